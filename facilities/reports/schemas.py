"""Fault reports as the API shows them."""

from __future__ import annotations

from datetime import date, datetime

from pydantic import BaseModel, Field

from facilities.faults.schemas import Category, RecurringOut


class PeriodOut(BaseModel):
    first: date = Field(description="First day of the period (UTC)")
    last: date = Field(description="Last day of the period, inclusive (UTC)")
    days: int


class OpenCountOut(BaseModel):
    prison_code: str
    category: Category
    count: int = Field(description="Faults open now (reported to on hold)")


class ClearanceOut(BaseModel):
    category: Category
    cleared: int = Field(description="Faults cleared in the period")
    mean_hours: float | None = Field(description="Mean calendar hours from report to cleared")


class ComplianceOut(BaseModel):
    category: Category | str = Field(description="A category, or 'all'")
    respond_met: int
    respond_missed: int
    respond_pct: float | None = Field(description="Share responded to in time; null if none due")
    clear_met: int
    clear_missed: int
    clear_pct: float | None = Field(description="Share cleared in time; null if none due")


class OverallOut(BaseModel):
    open: int
    cleared: int
    mean_hours_to_clear: float | None
    respond_pct: float | None
    clear_pct: float | None


class FaultReportOut(BaseModel):
    period: PeriodOut
    prisons: list[str] | None = Field(description="Prisons reported on; null for the estate")
    generated_at: datetime
    overall: OverallOut
    open: list[OpenCountOut] = Field(description="Open now, per prison and category")
    clearance: list[ClearanceOut] = Field(description="Cleared in the period, per category")
    compliance: list[ComplianceOut] = Field(
        description="Faults reported in the period that met or missed their targets, per "
        "category; those still within target, or paused on hold, are not counted yet"
    )
    recurring: list[RecurringOut] = Field(
        description="Places with one category of fault 3+ times in the 30 days to the period end"
    )
