"""The ``playbooks`` configuration of the notify and contain actions: bad values are errors that
name the key, the SMTP password never shows, and every action module's classes are registered."""

from __future__ import annotations

from pathlib import Path

import pytest

from playbooks.actions import contain, notify
from playbooks.actions.base import ACTIONS, Action
from soc_core.config import Settings, load_settings
from soc_core.errors import ConfigError


def test_every_notify_and_contain_action_is_registered() -> None:
    for module in (notify, contain):
        classes = [value for value in vars(module).values() if isinstance(value, type) and issubclass(value, Action)]
        concrete = [cls for cls in classes if cls is not Action]
        assert concrete, module.__name__
        assert all(ACTIONS[cls.name] is cls for cls in concrete)
    assert {"webhook", "email", "block_ip", "unblock_ip"} <= set(ACTIONS)


@pytest.mark.parametrize(
    ("yaml", "names"),
    [
        ("playbooks:\n  contain:\n    own_networks: [10.0.0.300/32]\n", "10.0.0.300"),
        ("playbooks:\n  contain:\n    max_prefix_v4: 0\n", "max_prefix_v4"),
        ("playbooks:\n  contain:\n    table: 'x; flush ruleset'\n", "table"),
        ("playbooks:\n  webhook:\n    allow: [file:///etc]\n", "file:///etc"),
        ("playbooks:\n  webhook:\n    allow: ['host/path']\n", "host/path"),
        ("playbooks:\n  smtp:\n    startls: true\n", "startls: unknown key"),
        (
            "playbooks:\n  contain:\n    gateways:\n      g:\n        host: '-oProxyCommand=x'\n"
            "        key_file: k\n        known_hosts_file: kh\n        tenant: police\n",
            "-oProxyCommand",
        ),
    ],
)
def test_actions_config_errors_name_the_key(tmp_path: Path, yaml: str, names: str) -> None:
    path = tmp_path / "soc.yml"
    path.write_text(yaml)
    with pytest.raises(ConfigError, match=names.replace("/", ".").replace("(", ".")):
        load_settings(path)


def test_smtp_password_is_never_shown(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, playbooks={"smtp": {"host": "mail", "password": "canary-9a8b7c"}})
    assert "canary-9a8b7c" not in repr(settings)
    assert "canary-9a8b7c" not in str(settings.model_dump(mode="json"))
    assert settings.playbooks.smtp.password is not None
    assert settings.playbooks.smtp.password.get_secret_value() == "canary-9a8b7c"
