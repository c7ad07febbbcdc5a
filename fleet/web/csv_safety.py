"""Cells for CSV downloads that a spreadsheet shows as text instead of running as a formula."""

from __future__ import annotations

from datetime import datetime
from typing import Any

# Spreadsheets treat a cell starting with any of these as a formula (tab and carriage return
# can hide one that follows), so such text is quoted to stay text.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(value: Any) -> Any:
    """The value as a CSV cell: text that could start a formula quoted, times in ISO 8601."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    if isinstance(value, datetime):
        return value.isoformat()
    return value
