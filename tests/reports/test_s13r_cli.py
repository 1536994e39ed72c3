"""Item 7: ``soc report weekly --format html|pdf --lang vi|en``, end to end as a user runs it (a
real process) on a seeded SQLite store: the numbers counted by the store come out as a PDF whose
text keeps its diacritics, and as HTML in either language; an agency's document holds nothing of
another agency."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from soc_core.config import Settings
from soc_core.store import SqliteStore
from tests.reports.seeded_week import seed_week
from tests.support.cli import soc
from workflow import audit


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    settings = Settings(data_dir=tmp_path / "var")
    store = SqliteStore(settings.sqlite_path)
    store.setup()
    audit.configure(store, settings)
    seed_week(store, monkeypatch)
    store.close()
    path = tmp_path / "soc.yml"
    path.write_text(f"data_dir: {tmp_path / 'var'}\n")
    return path


@pytest.mark.slow  # a soc process that counts, draws and lays out a PDF: over 20 s on a loaded machine
def test_s13r_7_pdf_in_vietnamese_to_a_file(tmp_path: Path, config: Path) -> None:
    out = tmp_path / "w48-police.pdf"
    args = ("--config", str(config), "report", "weekly", "--week", "2026-W48", "--tenant", "police")
    written = soc(*args, "--format", "pdf", "--lang", "vi", "--output", str(out), cwd=tmp_path)
    assert written.returncode == 0, written.stderr
    assert f"(pdf, vi, {out.stat().st_size} bytes) written to {out}" in written.stderr
    pdftotext = shutil.which("pdftotext")
    assert pdftotext, "pdftotext is missing: run scripts/install-system-deps (Debian poppler-utils)"
    text = re.sub(
        r"\s+", " ", subprocess.run([pdftotext, str(out), "-"], capture_output=True, text=True, check=True).stdout
    )
    assert "Báo cáo an ninh mạng hằng tuần" in text
    assert "Công an tỉnh ghi nhận 6 cảnh báo" in text  # the police's six W48 alerts, counted by the store
    assert "Cảnh báo theo mức độ và theo ngày" in text
    assert "Ransomware Note" not in text and "Sở Y tế" not in text  # the health agency's own


@pytest.mark.slow  # two soc processes that count and draw
def test_s13r_7_html_in_both_languages_to_standard_output(tmp_path: Path, config: Path) -> None:
    args = ("--config", str(config), "report", "weekly", "-w", "2026-W48", "--format", "html")
    english = soc(*args, "--lang", "en", cwd=tmp_path)
    assert english.returncode == 0, english.stderr
    assert english.stdout.startswith("<!DOCTYPE html>")
    assert '<html lang="en">' in english.stdout
    for expected in ("Weekly security report", "Agencies compared", "Công an tỉnh", "Sở Y tế", "Ransomware Note"):
        assert expected in english.stdout, expected
    vietnamese = soc(*args, "-l", "vi", "--tenant", "health", cwd=tmp_path)
    assert vietnamese.returncode == 0, vietnamese.stderr
    assert '<html lang="vi">' in vietnamese.stdout and "Sở Y tế ghi nhận 2 cảnh báo" in vietnamese.stdout
    assert 'id="agencies"' not in vietnamese.stdout and "Công an tỉnh" not in vietnamese.stdout


def test_s13r_7_unknown_language_is_refused(tmp_path: Path, config: Path) -> None:
    refused = soc("--config", str(config), "report", "weekly", "-w", "2026-W48", "--lang", "fr", cwd=tmp_path)
    assert refused.returncode == 2
    assert "--lang 'fr' is not a report language" in refused.stderr and "vi, en" in refused.stderr
