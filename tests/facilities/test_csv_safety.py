"""Cells written to CSV downloads open in a spreadsheet as text, never as a formula."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from fleet.web.csv_safety import spreadsheet_safe


@pytest.mark.parametrize(
    "text",
    [
        '=HYPERLINK("http://example.test")',
        "+1+1",
        "-2+3",
        "@SUM(A1:A2)",
        "\t=1+1",
        "\r=1+1",
        "=",
    ],
    ids=["equals", "plus", "minus", "at", "tab", "carriage-return", "equals-alone"],
)
def test_text_that_could_start_a_formula_is_quoted(text: str) -> None:
    assert spreadsheet_safe(text) == "'" + text


@pytest.mark.parametrize(
    "text",
    ["Broken kiosk", "", "wing 2 = cold", " =padded", "'already quoted", "ÉCRAN 3"],
    ids=["words", "empty", "equals-inside", "leading-space", "quote", "accented"],
)
def test_ordinary_text_is_untouched(text: str) -> None:
    assert spreadsheet_safe(text) == text


@pytest.mark.parametrize("number", [0, 42, -7, -0.5, 3.25, Decimal("-1.50")])
def test_numbers_stay_numbers_even_when_negative(number: Any) -> None:
    assert spreadsheet_safe(number) is number


def test_times_are_written_in_iso_8601() -> None:
    when = datetime(2026, 5, 1, 12, 30, tzinfo=UTC)
    assert spreadsheet_safe(when) == "2026-05-01T12:30:00+00:00"


def test_none_and_booleans_are_left_for_the_csv_writer() -> None:
    assert [spreadsheet_safe(v) for v in (None, True, False)] == [None, True, False]


def test_a_written_row_reads_back_with_the_formula_quoted() -> None:
    out = io.StringIO()
    csv.writer(out).writerow([spreadsheet_safe(v) for v in ("=1+1", "\tx", 5, "ok")])
    assert next(csv.reader(io.StringIO(out.getvalue()))) == ["'=1+1", "'\tx", "5", "ok"]
