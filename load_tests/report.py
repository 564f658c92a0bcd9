"""The files a load-test run leaves in its output directory.

``write_report`` writes three:

- ``result.json``: the whole ``RunResult`` (``RunResult.to_json``), indented;
- ``report.png``: five stacked panels over the seconds of the run (latency
  p50/p99/p999 of quotes, and of portfolio updates when there are any, on a
  log scale; delivered messages per second; connected clients; failures per
  interval: gaps, protocol errors, server closes and connect failures;
  server RSS on an axis from zero), with the spike window shaded when there
  is one;
- ``summary.md``: the headline figures, one row per phase and the verdict
  of each objective, for a pull request or a ticket.

The figure is drawn on a ``Figure`` with its own Agg canvas, so writing a
report neither needs a display nor touches pyplot's global state.
"""

from __future__ import annotations

import pathlib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import orjson
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogFormatter

from load_tests.result import Latency, Phase, RunResult, SloCheck, TimelinePoint

__all__ = [
    "JSON_NAME",
    "PNG_NAME",
    "SUMMARY_NAME",
    "build_figure",
    "render_summary",
    "write_report",
]

JSON_NAME = "result.json"
PNG_NAME = "report.png"
SUMMARY_NAME = "summary.md"

_JSON_OPTIONS = orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY
_FIGSIZE_IN = (10.0, 13.5)
_DPI = 100
_SPIKE_STYLE: dict[str, Any] = {"color": "red", "alpha": 0.15, "linewidth": 0}
_NOTE_STYLE: dict[str, Any] = {"ha": "center", "va": "center", "color": "grey"}
_MISSING = "-"
_PERCENTILES = ("p50", "p99", "p999")
_YLABELS = ("latency (ms)", "messages/s", "clients", "failures", "RSS (MB)")
_FAILURES = (
    ("gaps", "gaps"),
    ("errors", "protocol errors"),
    ("closes", "server closes"),
    ("connect_failures", "connect failures"),
)


def write_report(result: RunResult, out_dir: pathlib.Path) -> None:
    """Write ``result.json``, ``report.png`` and ``summary.md`` into ``out_dir`` (created)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / JSON_NAME).write_bytes(orjson.dumps(result.to_json(), option=_JSON_OPTIONS))
    _write_png(result, out_dir / PNG_NAME)
    (out_dir / SUMMARY_NAME).write_text(render_summary(result), encoding="utf-8")


# --- report.png --------------------------------------------------------------


def _write_png(result: RunResult, path: pathlib.Path) -> None:
    build_figure(result).savefig(path, format="png")


def build_figure(result: RunResult) -> Figure:
    """The figure of ``report.png``: one panel per ``_YLABELS`` entry, sharing the time axis."""
    fig = Figure(figsize=_FIGSIZE_IN, dpi=_DPI)
    FigureCanvasAgg(fig)
    panels: list[Axes] = list(fig.subplots(len(_YLABELS), 1, sharex=True))
    latency_ax, rate_ax, connected_ax, failures_ax, memory_ax = panels
    latency_ax.set_title(f"{result.scenario}: {result.clients:,} clients")
    for ax, ylabel in zip(panels, _YLABELS, strict=True):
        ax.set_ylabel(ylabel)
    memory_ax.set_xlabel("seconds since start")
    timeline = result.timeline
    if timeline:
        _plot_latency(latency_ax, timeline)
        _plot_series(rate_ax, [(p.t, p.delivered_per_s) for p in timeline], "delivered/s")
        _plot_series(connected_ax, [(p.t, p.connected) for p in timeline], "connected")
        _plot_failures(failures_ax, timeline)
        _plot_memory(memory_ax, timeline)
    else:
        for ax in panels:
            _note(ax, "no data")
    for ax in panels:
        if result.spike_window is not None:
            ax.axvspan(*result.spike_window, label="spike", **_SPIKE_STYLE)
        _legend_if_several(ax)
    fig.tight_layout()
    return fig


def _plot_latency(ax: Axes, timeline: Sequence[TimelinePoint]) -> None:
    """p50/p99/p999 in ms; missing and non-positive points (no place on a log axis) skipped.

    Quotes are solid lines; portfolio updates, when there are any, dashed.
    """
    plotted = False
    for stream, style in (("latency", "-"), ("portfolio_latency", "--")):
        prefix = "portfolio " if stream == "portfolio_latency" else ""
        for name in _PERCENTILES:
            points = [(p.t, getattr(getattr(p, stream), name)) for p in timeline]
            kept = [(t, v) for t, v in points if v is not None and v > 0]
            if kept:
                ax.plot([t for t, _ in kept], [v for _, v in kept], style, label=prefix + name)
                plotted = True
    if plotted:
        ax.set_yscale("log")
        # Plain numbers ("20", "0.5") rather than powers of ten.
        ax.yaxis.set_major_formatter(LogFormatter())
        ax.yaxis.set_minor_formatter(LogFormatter(labelOnlyBase=False))


def _plot_series(ax: Axes, points: Sequence[tuple[float, float]], label: str) -> None:
    ax.plot([t for t, _ in points], [v for _, v in points], label=label)
    ax.yaxis.set_major_formatter(FuncFormatter(_tick_label))


def _plot_failures(ax: Axes, timeline: Sequence[TimelinePoint]) -> None:
    for field, label in _FAILURES:
        _plot_series(ax, [(p.t, float(getattr(p, field))) for p in timeline], label)
    ax.set_ylim(bottom=0)


def _plot_memory(ax: Axes, timeline: Sequence[TimelinePoint]) -> None:
    points = [(p.t, p.rss_mb) for p in timeline if p.rss_mb is not None]
    if points:
        _plot_series(ax, points, "server RSS")
        # From zero: growth reads as a share of the whole, not a cliff.
        ax.set_ylim(bottom=0)
    else:
        _note(ax, "server memory not available")


def _tick_label(value: float, _pos: int | None) -> str:
    """Thousands separators from 1,000 up; small values as they are ("0.5", "800")."""
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:g}"


def _note(ax: Axes, text: str) -> None:
    ax.text(0.5, 0.5, text, transform=ax.transAxes, **_NOTE_STYLE)


def _legend_if_several(ax: Axes) -> None:
    _, labels = ax.get_legend_handles_labels()
    if len(labels) > 1:
        # A fixed place: "best" is slow on long timelines.
        ax.legend(loc="upper left")


# --- summary.md --------------------------------------------------------------


def render_summary(result: RunResult) -> str:
    """The markdown of ``summary.md``."""
    lines = [
        f"# Load test: {result.scenario} against {result.url}",
        "",
        f"Started {result.started_at}; {result.symbols_per_client:,} symbols per client.",
        "",
    ]
    if result.generator.get("limited") is True:
        lines += [_cpu_warning(result.generator), ""]
    lines += ["## Headline", "", *_table(("Figure", "Value"), _headline_rows(result)), ""]
    lines += ["## Phases", "", *_phase_lines(result.phases), ""]
    lines += ["## Objectives", "", *_slo_lines(result.slo)]
    return "\n".join(lines) + "\n"


def _cpu_warning(generator: Mapping[str, Any]) -> str:
    peak = _fmt_pct(_opt_float(generator.get("max_cpu_pct")))
    return (
        f"**Warning: the load generator was CPU-bound (max {peak} CPU in a worker); "
        "these figures understate the server.**"
    )


def _headline_rows(result: RunResult) -> list[tuple[str, str]]:
    lat = result.latency_ms
    server = result.server
    rows = [
        ("Clients (target / max connected)", f"{result.clients:,} / {result.connected_max:,}"),
        ("Duration", f"{result.duration_s:,.1f} s"),
        ("Delivered", _fmt_count(result.delivered)),
        ("Delivered/s", _fmt_rate(result.delivered_per_s)),
        ("Produced", _fmt_count(result.produced)),
        ("Conflated", _fmt_count(result.conflated)),
        ("Latency p50 (ms)", _fmt_ms(lat.p50)),
        ("Latency p99 (ms)", _fmt_ms(lat.p99)),
        ("Latency p999 (ms)", _fmt_ms(lat.p999)),
        ("Latency max (ms)", _fmt_ms(lat.max)),
        ("Portfolio latency p50 (ms)", _fmt_ms(result.portfolio_latency_ms.p50)),
        ("Portfolio latency p99 (ms)", _fmt_ms(result.portfolio_latency_ms.p99)),
        ("Portfolio latency p999 (ms)", _fmt_ms(result.portfolio_latency_ms.p999)),
        ("Portfolio latency max (ms)", _fmt_ms(result.portfolio_latency_ms.max)),
        ("Gaps", _fmt_count(result.gaps)),
        ("Protocol errors", _fmt_errors(result.protocol_errors)),
        ("Closes by code", _fmt_breakdown(result.closes) or "none"),
        ("Reconnects", _fmt_count(result.reconnects)),
        ("Connect failures", _fmt_count(result.connect_failures)),
        ("Server RSS start / peak / end (MB)", _fmt_mbs(server.start, server.peak, server.end)),
    ]
    if result.spike_window is not None:
        start, end = result.spike_window
        rows.append(("Spike window", f"{start:,.1f}-{end:,.1f} s"))
    if result.spike_window is not None or (server.before_spike, server.after_spike) != (None, None):
        rows.append(
            (
                "Server RSS before / after spike (MB)",
                _fmt_mbs(server.before_spike, server.after_spike),
            )
        )
    if server.growth_pct is not None:
        rows.append(("Server RSS growth", _fmt_pct(server.growth_pct)))
    rows += _generator_rows(result.generator)
    return rows


def _generator_rows(generator: Mapping[str, Any]) -> list[tuple[str, str]]:
    workers = generator.get("workers")
    per_worker = generator.get("cpu_pct")
    per_worker_text = (
        ", ".join(_fmt_pct(_opt_float(v)) for v in per_worker)
        if isinstance(per_worker, list) and per_worker
        else _MISSING
    )
    return [
        ("Generator workers", _fmt_count(workers) if isinstance(workers, int) else _MISSING),
        ("Generator CPU max", _fmt_pct(_opt_float(generator.get("max_cpu_pct")))),
        ("Generator CPU per worker", per_worker_text),
    ]


def _phase_lines(phases: Sequence[Phase]) -> list[str]:
    if not phases:
        return ["no phases"]
    header = ("Phase", "Window (s)", "Delivered/s", "p50 ms", "p99 ms", "p999 ms")
    rows = [
        (
            p.name,
            f"{p.start_s:,.1f}-{p.end_s:,.1f}",
            _fmt_rate(p.delivered_per_s),
            *_pcts(p.latency),
        )
        for p in phases
    ]
    return _table(header, rows)


def _pcts(latency: Latency) -> tuple[str, str, str]:
    return _fmt_ms(latency.p50), _fmt_ms(latency.p99), _fmt_ms(latency.p999)


def _slo_lines(checks: Sequence[SloCheck]) -> list[str]:
    if not checks:
        return ["no objectives"]
    header = ("Objective", "Op", "Limit", "Actual", "Result")
    rows = [(c.name, c.op, _fmt_num(c.limit), _fmt_num(c.actual), _verdict(c.ok)) for c in checks]
    overall = _verdict(all(c.ok for c in checks))
    return [*_table(header, rows), "", f"**Overall: {overall}**"]


def _table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"

    return [line(header), "|" + "---|" * len(header), *(line(row) for row in rows)]


# --- formatting --------------------------------------------------------------


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def _opt_float(value: object) -> float | None:
    """``value`` as a float, or None when it is not a number."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None


def _fmt_count(n: int) -> str:
    return f"{n:,}"


def _fmt_rate(per_s: float) -> str:
    return f"{per_s:,.1f}"


def _fmt_ms(ms: float | None) -> str:
    if ms is None:
        return _MISSING
    return f"{ms:,.2f}" if abs(ms) < 100 else f"{ms:,.1f}"


def _fmt_mb(mb: float | None) -> str:
    return _MISSING if mb is None else f"{mb:,.1f}"


def _fmt_mbs(*mbs: float | None) -> str:
    return " / ".join(_fmt_mb(mb) for mb in mbs)


def _fmt_pct(pct: float | None) -> str:
    return _MISSING if pct is None else f"{pct:.1f}%"


def _fmt_num(value: float | None) -> str:
    """A limit or an actual of any unit: at most two decimals, trailing zeros dropped."""
    if value is None:
        return _MISSING
    if value != 0 and abs(value) < 0.01:
        return f"{value:.2g}"
    return f"{value:,.2f}".rstrip("0").rstrip(".")


def _fmt_breakdown(counts: Mapping[Any, int]) -> str:
    """``key: n`` pairs by key (close codes may arrive as ints or strings)."""
    return ", ".join(f"{k}: {n:,}" for k, n in sorted(counts.items(), key=lambda kv: str(kv[0])))


def _fmt_errors(errors: Mapping[str, int]) -> str:
    total = _fmt_count(sum(errors.values()))
    return f"{total} ({_fmt_breakdown(errors)})" if errors else total
