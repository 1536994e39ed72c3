"""SigmaHQ's public rules must import as they are (DESIGN.md §5)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from detections.engine import compile_ruleset
from detections.loader import load_rules

SIGMAHQ = Path("/work/shared/data/sigmahq/rules")


@pytest.mark.slow
@pytest.mark.skipif(not SIGMAHQ.is_dir(), reason=f"{SIGMAHQ} is absent")
def test_sigmahq_rules_compile_to_matchers() -> None:
    ruleset = load_rules([SIGMAHQ])
    compiled = compile_ruleset(ruleset)
    attempted = len(ruleset.detection_rules()) + len(ruleset.errors)
    failures = list(ruleset.errors) + list(compiled.errors)
    reasons = Counter(error.message.split(":")[0] for error in failures)
    listing = "\n".join(f"{n:5d}  {reason}" for reason, n in reasons.most_common())
    details = "\n".join(error.render() for error in failures[:50])
    rate = len(compiled.rules) / attempted
    assert rate >= 0.95, f"{rate:.1%} compiled; failures by reason:\n{listing}\n{details}"
    assert attempted > 2500
