"""The incident timeline as a PNG: error rate / latency series with change markers.

Drawn with matplotlib's Agg backend (no display, safe in worker threads when each
call builds its own Figure instead of using pyplot's global state).
"""

from __future__ import annotations

import io
from datetime import UTC, datetime

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.dates import AutoDateLocator, ConciseDateFormatter
from matplotlib.figure import Figure

MAX_PANELS = 3
_MARKER_COLOURS = {"deploy": "tab:red", "config": "tab:orange", "feature_flag": "tab:purple",
                   "db_migration": "tab:brown", "alert": "tab:gray"}


class ChartError(ValueError):
    """The report's chart section cannot be drawn; the message says what is wrong."""


def _when(value: object) -> datetime:
    try:
        if isinstance(value, int | float):
            return datetime.fromtimestamp(float(value), UTC)
        return datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except (TypeError, ValueError, OverflowError):
        raise ChartError(f"chart time {value!r} is not ISO-8601; use e.g. 2026-10-02T16:18:00Z") from None


def has_chart(report: dict | None) -> bool:
    """Whether the report carries at least one series with points to plot."""
    chart = (report or {}).get("chart") or {}
    return any(s.get("points") for s in chart.get("series") or [])


def render_timeline(chart: dict, *, title: str = "Incident timeline") -> bytes:
    """Draw ``report["chart"]`` as a PNG.

    Args:
        chart: ``{"series": [{"name", "unit"?, "service"?, "points": [[iso_ts, value], ...]}],
            "markers": [{"ts", "label"|"summary", "kind"?}]}``. Series sharing a unit share a panel
            (at most three panels); markers are vertical lines on every panel.
        title: the figure title.

    Returns:
        The PNG bytes.

    Raises:
        ChartError: no series with points, or a time that is not ISO-8601.
    """
    series = [s for s in chart.get("series") or [] if s.get("points")]
    if not series:
        raise ChartError("the report has no chart series to draw; nothing to upload")
    panels: dict[str, list[dict]] = {}
    for s in series:
        unit = str(s.get("unit") or s.get("name") or "value")
        if unit not in panels and len(panels) >= MAX_PANELS:
            continue
        panels.setdefault(unit, []).append(s)
    fig = Figure(figsize=(10.5, 2.2 * len(panels) + 0.8), dpi=100)
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(panels), 1, sharex=True, squeeze=False)[:, 0]
    markers = [m for m in chart.get("markers") or [] if m.get("ts")]
    for ax, (unit, members) in zip(axes, panels.items(), strict=True):
        for s in members:
            xs = [_when(p[0]) for p in s["points"]]
            ys = [float(p[1]) for p in s["points"]]
            label = s.get("name") or unit
            if s.get("service"):
                label = f"{s['service']} {label}"
            ax.plot(xs, ys, label=label, linewidth=1.4)
        for m in markers:
            if m.get("kind") == "onset":
                # The incident itself: everything from the onset on is shaded.
                ax.axvspan(_when(m["ts"]), xs[-1] if xs else _when(m["ts"]), color="tab:red", alpha=0.07)
                ax.axvline(_when(m["ts"]), color="black", linestyle=":", linewidth=1.2)
            elif m.get("culprit"):
                ax.axvline(_when(m["ts"]), color=_MARKER_COLOURS.get(str(m.get("kind")), "tab:red"),
                           linestyle="-", linewidth=2.6)
            else:
                ax.axvline(_when(m["ts"]), color=_MARKER_COLOURS.get(str(m.get("kind")), "tab:green"),
                           linestyle="--", linewidth=0.9, alpha=0.7)
        ax.set_ylabel(unit)
        ax.grid(alpha=0.3)
        # Outside the plot, so it never hides a marker's label (the first change sat under it).
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=7, borderaxespad=0)
    top = axes[0]
    for m in markers:
        text = str(m.get("label") or m.get("ref") or m.get("summary") or "")[:28]
        if m.get("culprit"):
            text = f"culprit: {m.get('ref') or text}"[:36]
        top.annotate(text, xy=(_when(m["ts"]), 1.0), xycoords=("data", "axes fraction"), rotation=90,
                     fontsize=7, va="top", ha="right", fontweight="bold" if m.get("culprit") else "normal")
    locator = AutoDateLocator()
    axes[-1].xaxis.set_major_locator(locator)
    axes[-1].xaxis.set_major_formatter(ConciseDateFormatter(locator))
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()
