"""The files ``write_report`` leaves: result.json, report.png and summary.md."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import orjson

from load_tests.report import build_figure, write_report
from load_tests.result import (
    Latency,
    Phase,
    RunResult,
    ServerMemory,
    SloCheck,
    TimelinePoint,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def generator(*, limited: bool = False) -> dict[str, Any]:
    return {"workers": 2, "cpu_pct": [41.5, 97.5], "max_cpu_pct": 97.5, "limited": limited}


def timeline(seconds: int = 10, *, rss: bool = True) -> list[TimelinePoint]:
    return [
        TimelinePoint(
            t=float(i + 1),
            delivered_per_s=12_000.0 + 100 * i,
            latency=Latency(count=12_000, p50=1.5 + i / 10, p99=8.0 + i, p999=20.0 + i, max=42.0)
            if i != 3
            else Latency(),
            connected=min(1_000, 250 * (i + 1)),
            rss_mb=(150.0 + 2 * i) if rss and i != 5 else None,
        )
        for i in range(seconds)
    ]


def run_result(**changes: Any) -> RunResult:
    """A spike run with every field filled; ``changes`` replaces fields."""
    result = RunResult(
        scenario="spike",
        url="ws://127.0.0.1:8000/ws",
        started_at="2025-01-02T03:04:05Z",
        duration_s=10.0,
        clients=1_000,
        symbols_per_client=20,
        connected_max=998,
        connected_end=990,
        delivered=1_234_567,
        delivered_per_s=123_456.7,
        produced=1_300_000,
        conflated=65_433,
        snapshots=20_000,
        frames=1_100_000,
        payload_bytes=987_654_321,
        latency_ms=Latency(count=1_234_567, p50=1.234, p99=12.5, p999=48.25, max=250.0),
        portfolio_latency_ms=Latency(count=10, p50=3.0, p99=9.0, p999=9.5, max=10.0),
        gaps=3,
        protocol_errors={"bad_json": 2, "unknown_type": 1},
        closes={"1000": 5, "1011": 2},
        slow_closes={"4008": 1},
        reconnects=7,
        connect_failures=1,
        connect_errors={"TimeoutError": 1},
        generator=generator(),
        server=ServerMemory(
            source="metrics",
            start=150.0,
            peak=420.5,
            end=160.0,
            before_spike=152.0,
            after_spike=None,
            growth_pct=None,
        ),
        phases=[
            Phase("baseline", 0.0, 3.0, 10_000.0, Latency(100, 1.0, 5.0, 9.0, 12.0)),
            Phase("spike", 3.0, 6.0, 250_000.0, Latency(100, 4.0, 40.0, 90.0, 120.0)),
            Phase("recovery", 6.0, 10.0, 11_000.0, Latency()),
        ],
        timeline=timeline(),
        spike_window=(3.0, 6.0),
        slo=[
            SloCheck("latency_p99_ms", "<=", 50.0, 12.5, ok=True),
            SloCheck("gaps", "<=", 0.0, 3.0, ok=False),
        ],
        config={"rate": 10, "symbols": ["AAPL", "MSFT"]},
    )
    return dataclasses.replace(result, **changes)


def summary_of(result: RunResult, out_dir: Path) -> str:
    write_report(result, out_dir)
    return (out_dir / "summary.md").read_text(encoding="utf-8")


def assert_png(path: Path) -> None:
    data = path.read_bytes()
    assert data.startswith(PNG_SIGNATURE)
    assert len(data) > 5_000


def test_writes_the_three_files_into_a_directory_it_creates(tmp_path: Path):
    out_dir = tmp_path / "runs" / "spike"

    write_report(run_result(), out_dir)

    assert sorted(p.name for p in out_dir.iterdir()) == ["report.png", "result.json", "summary.md"]


def test_result_json_holds_the_figures_with_lists_for_tuples_and_null_for_none(tmp_path: Path):
    write_report(run_result(), tmp_path)

    data = orjson.loads((tmp_path / "result.json").read_bytes())

    assert data["scenario"] == "spike"
    assert data["delivered"] == 1_234_567
    assert data["delivered_per_s"] == 123_456.7
    assert data["latency_ms"]["p50"] == 1.234
    assert data["latency_ms"]["p99"] == 12.5
    assert data["latency_ms"]["p999"] == 48.25
    assert data["gaps"] == 3
    assert data["closes"] == {"1000": 5, "1011": 2}
    assert data["protocol_errors"] == {"bad_json": 2, "unknown_type": 1}
    assert data["spike_window"] == [3.0, 6.0]
    assert data["server"]["after_spike"] is None
    assert data["timeline"][3]["latency"]["p99"] is None
    assert data["slo_ok"] is False
    assert data["slo"][1] == {
        "name": "gaps",
        "op": "<=",
        "limit": 0.0,
        "actual": 3.0,
        "ok": False,
    }


def test_result_json_is_indented(tmp_path: Path):
    write_report(run_result(), tmp_path)

    assert (tmp_path / "result.json").read_text(encoding="utf-8").startswith('{\n  "')


def test_report_png_is_a_png(tmp_path: Path):
    write_report(run_result(), tmp_path)

    assert_png(tmp_path / "report.png")


def test_report_png_without_server_memory_or_spike_is_a_png(tmp_path: Path):
    write_report(run_result(timeline=timeline(rss=False), spike_window=None), tmp_path)

    assert_png(tmp_path / "report.png")


def test_empty_timeline_without_spike_still_writes_a_png(tmp_path: Path):
    result = run_result(timeline=[], phases=[], spike_window=None, slo=[])

    write_report(result, tmp_path)

    assert_png(tmp_path / "report.png")
    assert orjson.loads((tmp_path / "result.json").read_bytes())["timeline"] == []


def test_summary_names_the_scenario_and_url_and_formats_counts(tmp_path: Path):
    summary = summary_of(run_result(), tmp_path)

    assert summary.startswith("# Load test: spike against ws://127.0.0.1:8000/ws\n")
    assert "| Delivered | 1,234,567 |" in summary
    assert "| Delivered/s | 123,456.7 |" in summary
    assert "| Clients (target / max connected) | 1,000 / 998 |" in summary
    assert "| Latency p50 (ms) | 1.23 |" in summary
    assert "| Latency max (ms) | 250.0 |" in summary
    assert "| Protocol errors | 3 (bad_json: 2, unknown_type: 1) |" in summary
    assert "| Closes by code | 1000: 5, 1011: 2 |" in summary
    assert "| Server RSS start / peak / end (MB) | 150.0 / 420.5 / 160.0 |" in summary
    assert "| Generator CPU per worker | 41.5%, 97.5% |" in summary


def test_summary_shows_missing_values_as_a_dash(tmp_path: Path):
    summary = summary_of(run_result(), tmp_path)

    assert "| Server RSS before / after spike (MB) | 152.0 / - |" in summary
    assert "| recovery | 6.0-10.0 | 11,000.0 | - | - | - |" in summary


def test_summary_has_a_row_per_phase(tmp_path: Path):
    summary = summary_of(run_result(), tmp_path)

    assert "| baseline | 0.0-3.0 | 10,000.0 | 1.00 | 5.00 | 9.00 |" in summary
    assert "| spike | 3.0-6.0 | 250,000.0 | 4.00 | 40.00 | 90.00 |" in summary


def test_summary_fails_when_an_objective_fails(tmp_path: Path):
    summary = summary_of(run_result(), tmp_path)

    assert "| gaps | <= | 0 | 3 | FAIL |" in summary
    assert "| latency_p99_ms | <= | 50 | 12.5 | PASS |" in summary
    assert "**Overall: FAIL**" in summary


def test_summary_passes_when_every_objective_holds(tmp_path: Path):
    slo = [SloCheck("latency_p99_ms", "<=", 50.0, 12.5, ok=True)]

    summary = summary_of(run_result(slo=slo), tmp_path)

    assert "**Overall: PASS**" in summary
    assert "FAIL" not in summary


def test_summary_says_so_when_there_are_no_objectives(tmp_path: Path):
    summary = summary_of(run_result(slo=[]), tmp_path)

    assert "no objectives" in summary
    assert "PASS" not in summary
    assert "FAIL" not in summary


def test_summary_warns_only_when_the_generator_was_cpu_bound(tmp_path: Path):
    limited = summary_of(run_result(generator=generator(limited=True)), tmp_path / "limited")
    free = summary_of(run_result(generator=generator(limited=False)), tmp_path / "free")

    assert "CPU-bound" in limited
    assert "**Warning: the load generator was CPU-bound" in limited
    assert "CPU-bound" not in free


def test_summary_tolerates_a_generator_without_figures(tmp_path: Path):
    summary = summary_of(run_result(generator={}), tmp_path)

    assert "| Generator workers | - |" in summary
    assert "| Generator CPU max | - |" in summary
    assert "CPU-bound" not in summary


# --- issue 14, item 15 ------------------------------------------------------------------


def panel(figure: Any, ylabel: str) -> Any:
    (ax,) = [ax for ax in figure.axes if ax.get_ylabel() == ylabel]
    return ax


def line_labels(ax: Any) -> list[str]:
    return [line.get_label() for line in ax.get_lines()]


def with_portfolio_and_failures(points: list[TimelinePoint]) -> list[TimelinePoint]:
    return [
        dataclasses.replace(
            p,
            portfolio_latency=Latency(count=10, p50=3.0, p99=9.0 + i, p999=9.5 + i, max=12.0),
            gaps=i % 2,
            errors=1 if i == 4 else 0,
            closes=2 if i == 7 else 0,
            connect_failures=1 if i == 0 else 0,
        )
        for i, p in enumerate(points)
    ]


def test_png_plots_the_portfolio_latency_beside_the_quotes():
    result = run_result(timeline=with_portfolio_and_failures(timeline()))

    latency = panel(build_figure(result), "latency (ms)")

    assert {"p50", "p99", "p999", "portfolio p50", "portfolio p99", "portfolio p999"} <= set(
        line_labels(latency)
    )


def test_png_has_a_failures_panel_with_each_kind_per_interval():
    points = with_portfolio_and_failures(timeline())
    result = run_result(timeline=points)

    failures = panel(build_figure(result), "failures")

    lines = {line.get_label(): list(line.get_ydata()) for line in failures.get_lines()}
    assert lines["gaps"] == [float(i % 2) for i in range(10)]
    assert lines["protocol errors"] == [1.0 if i == 4 else 0.0 for i in range(10)]
    assert lines["server closes"] == [2.0 if i == 7 else 0.0 for i in range(10)]
    assert lines["connect failures"] == [1.0 if i == 0 else 0.0 for i in range(10)]


def test_png_memory_axis_starts_at_zero():
    memory = panel(build_figure(run_result()), "RSS (MB)")

    assert memory.get_ylim()[0] == 0.0


def test_summary_shows_the_portfolio_latency(tmp_path: Path):
    summary = summary_of(run_result(), tmp_path)

    assert "| Portfolio latency p50 (ms) | 3.00 |" in summary
    assert "| Portfolio latency p99 (ms) | 9.00 |" in summary
