"""Inputs that produce raw records for the parsers."""

from __future__ import annotations

from sensors.sources.logfile import FileTailer, LogRecord

__all__ = ["FileTailer", "LogRecord"]
