"""Health history drawn as small server-side SVG line charts, each with a text summary."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

WIDTH, HEIGHT = 320, 120
PAD_LEFT, PAD_RIGHT, PAD_TOP, PAD_BOTTOM = 36, 8, 8, 20


@dataclass(frozen=True)
class MetricSpec:
    name: str
    title: str
    unit: str
    low: float
    high: float


BATTERY = MetricSpec("battery", "Battery", "%", 0, 100)
CPU = MetricSpec("cpu", "CPU", "%", 0, 100)
STORAGE = MetricSpec("storage", "Storage used", "%", 0, 100)
SIGNAL_BARS = MetricSpec("signal_bars", "Signal", "bars", 0, 5)
WIFI_RSSI = MetricSpec("wifi_rssi", "Wi-Fi signal", "dBm", -100, -30)

Points = list[tuple[datetime, float]]


@dataclass(frozen=True)
class Chart:
    spec: MetricSpec
    lines: list[str]  # SVG polyline `points`, one per unbroken run of data
    y_ticks: list[tuple[float, str]]  # (y position, label)
    x_ticks: list[tuple[float, str]]  # (x position, label)
    count: int
    minimum: float | None
    average: float | None
    maximum: float | None
    latest: float | None

    @property
    def summary(self) -> str:
        """The chart in words, its text alternative."""
        unit = self.spec.unit
        if self.latest is None:
            return f"{self.spec.title}: no reports in this period."
        return (
            f"{self.spec.title}: latest {fmt(self.latest)} {unit}, "
            f"lowest {fmt(self.minimum)} {unit}, "
            f"average {fmt(self.average)} {unit}, highest {fmt(self.maximum)} {unit}, "
            f"from {self.count} points."
        )


def fmt(value: float | None) -> str:
    if value is None:
        return "no data"
    return f"{value:.0f}" if abs(value) >= 10 or value == int(value) else f"{value:.1f}"


def signal_spec(series: dict[str, Points], kind: str) -> MetricSpec:
    """Phones report signal bars, other kinds Wi-Fi strength; use whichever the device sends."""
    if "signal_bars" in series:
        return SIGNAL_BARS
    if "wifi_rssi" in series:
        return WIFI_RSSI
    return SIGNAL_BARS if kind == "in_cell_phone" else WIFI_RSSI


def chart_specs(series: dict[str, Points], kind: str) -> list[MetricSpec]:
    return [BATTERY, CPU, STORAGE, signal_spec(series, kind)]


def draw(
    spec: MetricSpec,
    points: Points,
    *,
    start: datetime,
    end: datetime,
    step_s: int,
    time_format: str,
) -> Chart:
    """Scale the points into the plot area; a gap longer than a step breaks the line."""
    span = max((end - start).total_seconds(), 1.0)
    plot_w = WIDTH - PAD_LEFT - PAD_RIGHT
    plot_h = HEIGHT - PAD_TOP - PAD_BOTTOM
    low = min([spec.low, *(v for _, v in points)])
    high = max([spec.high, *(v for _, v in points)])
    scale = (high - low) or 1.0

    def x_of(when: datetime) -> float:
        return PAD_LEFT + plot_w * (when - start).total_seconds() / span

    def y_of(value: float) -> float:
        return PAD_TOP + plot_h * (1 - (value - low) / scale)

    lines: list[str] = []
    run: list[str] = []
    previous: datetime | None = None
    for when, value in points:
        if previous is not None and (when - previous).total_seconds() > step_s * 2.5:
            lines.append(" ".join(run))
            run = []
        run.append(f"{x_of(when):.1f},{y_of(value):.1f}")
        previous = when
    if run:
        # A single point still needs two to draw; repeat it so it shows as a dot-like stub.
        lines.append(" ".join(run) if len(run) > 1 else f"{run[0]} {run[0]}")
    values = [v for _, v in points]
    y_ticks = [(y_of(v), fmt(v)) for v in (low, (low + high) / 2, high)]
    x_ticks = [
        (x_of(start) + plot_w * i / 2, (start + (end - start) * i / 2).strftime(time_format))
        for i in range(3)
    ]
    return Chart(
        spec=spec,
        lines=lines,
        y_ticks=y_ticks,
        x_ticks=x_ticks,
        count=len(values),
        minimum=min(values) if values else None,
        average=sum(values) / len(values) if values else None,
        maximum=max(values) if values else None,
        latest=values[-1] if values else None,
    )
