"""soc_core.casefolding: the one meaning of case-insensitive (issue 10 item 1)."""

from __future__ import annotations

import unicodedata

import re2

from soc_core.casefolding import Wildcard, fold, lucene_pattern, needs_pattern


def test_issue10_unicode_fold_is_nfc_then_simple_case_folding() -> None:
    assert fold("NGUYỄN") == fold("nguyễn") == fold(unicodedata.normalize("NFD", "NGUYỄN")) == "nguyễn"
    assert fold("ΟΔΥΣΣΕΥΣ") == fold("οδυσσευς")
    assert fold("STRAẞE") == "straße" != fold("STRASSE")  # one character for one
    assert fold("İSTANBUL") != fold("istanbul") and fold("ıstanbul") != fold("istanbul")


def test_issue10_unicode_lucene_pattern_spells_every_stored_form() -> None:
    # Lucene regexps and RE2 agree on this subset (classes, groups, alternation, .*)
    pattern = re2.compile(lucene_pattern(["NGUYỄ", Wildcard.ANY_RUN]))
    for stored in ("NGUYỄN", "nguyễn", "Nguyễn Văn", "nguyễn"):
        for form in ("NFC", "NFD"):
            assert pattern.fullmatch(unicodedata.normalize(form, stored)), (stored, form)
    assert pattern.fullmatch("NGUYÊ\u0303N")  # composed in part: ê then a combining tilde
    assert not pattern.fullmatch("nguyen")
    assert not needs_pattern("sshd.exe") and needs_pattern("nguyễn") and needs_pattern("straße")
