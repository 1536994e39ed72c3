"""Item 5 of the r13 brief (threat model, e-mail recipients): a weekly-report or digest recipient
is one plain address; a display name, a list, or a line break that would inject a header or a
second recipient is refused when the configuration loads, naming the key."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from soc_core.config import load_settings
from soc_core.errors import ConfigError


@pytest.mark.parametrize(
    "address", ["boss@so.gov.vn\r\nBcc: spy@example.org", "Boss <boss@so.gov.vn>", "a@b.vn, spy@c.org"]
)
@pytest.mark.parametrize("job", ["weekly_report", "digest"])
def test_r13_5_recipient_is_one_plain_address(tmp_path: Path, address: str, job: str) -> None:
    path = tmp_path / "soc.yml"
    path.write_text(f"scheduler:\n  {job}:\n    recipients:\n      - address: {json.dumps(address)}\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    assert f"scheduler.{job}.recipients.0.address" in caught.value.render()
    path.write_text(f"scheduler:\n  {job}:\n    recipients:\n      - address: giám.đốc@sở-y-tế.vn\n")
    assert getattr(load_settings(path).scheduler, job).recipients[0].address == "giám.đốc@sở-y-tế.vn"
