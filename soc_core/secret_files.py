"""Secrets kept in files of their own (API keys, passwords, bearer tokens): read at use, so a
rotated secret needs no restart, and refused when other users can read the file."""

from __future__ import annotations

from pathlib import Path

from soc_core.errors import ConfigError


def read_secret(path: Path, *, what: str) -> str:
    """The first line of a key file; warns nobody, but refuses a file others can read."""
    try:
        mode = path.stat().st_mode
        text = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(f"cannot read the {what} file: {exc.strerror}", where=str(path)) from exc
    if mode & 0o077:
        raise ConfigError(f"the {what} file can be read by other users", where=str(path), hint=f"chmod 600 {path}")
    if not text:
        raise ConfigError(f"the {what} file is empty", where=str(path))
    return text.splitlines()[0].strip()


__all__ = ["read_secret"]
