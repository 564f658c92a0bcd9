"""Operators' references agree with the code, both ways: the metrics reference of
docs/operations.md and the families a running gateway exposes; the Grafana dashboard and the
Prometheus alert rules in deploy/ use only metrics that exist, and every alert is documented;
every log call names an event, and the log events of the code are the ones documented."""

from __future__ import annotations

import ast
import dataclasses
import json
import re
from collections.abc import Iterator

import pytest
from prometheus_client.parser import text_string_to_metric_families

from gateway.marketdata.kafka import KafkaSource
from tests.builders import make_settings
from tests.harness import RunningGateway, running_gateway
from tests.test_docs import DOCS, ROOT, section

METRIC = re.compile(r"^\| `(tickgate_[a-z_]+)` \|", re.MULTILINE)
DASHBOARD = ROOT / "deploy" / "grafana" / "tickgate.json"
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"
# A metric name in a PromQL expression: ours, and the process metrics we expose.
USED = re.compile(r"\b((?:tickgate|process)_[a-z0-9_]+)\b")
HISTOGRAM_SERIES = re.compile(r"_(bucket|count|sum)$")
LOG_LEVELS = {"debug", "info", "warning", "error", "exception", "critical"}
LOGGERS = {"logger", "log"}  # a module's logger, and a connection's adapter (self.log)
PACKAGES = ("gateway", "ledger", "orders", "portfolio", "pricing")


def documented_metrics() -> set[str]:
    return set(METRIC.findall(section(DOCS / "operations.md", "## Metrics reference")))


def dashboard_exprs() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]


def alert_rules() -> dict[str, str]:
    """Each rule's name and its expression (the file's one-line ``expr:`` layout)."""
    text = ALERTS.read_text(encoding="utf-8")
    names = re.findall(r"^ +- alert: (\w+)$", text, re.MULTILINE)
    exprs = re.findall(r"^ +expr: (.+)$", text, re.MULTILINE)
    assert len(names) == len(exprs), "every rule has one one-line expr"
    return dict(zip(names, exprs, strict=True))


def used_metrics(exprs: list[str]) -> set[str]:
    """The metric families the expressions read (a histogram's series by its name)."""
    return {HISTOGRAM_SERIES.sub("", name) for e in exprs for name in USED.findall(e)}


def documented_alerts() -> set[str]:
    return set(
        re.findall(
            r"^\| `(Tickgate\w+)` \|", section(DOCS / "operations.md", "## Alerts"), re.MULTILINE
        )
    )


def exposed_metrics(gw: RunningGateway) -> set[str]:
    """Every tickgate_ family, as its name appears in the docs (counters with ``_total``)."""
    text = gw.gateway.metrics.exposition().decode()
    names = {
        f"{family.name}_total" if family.type == "counter" else family.name
        for family in text_string_to_metric_families(text)
        if family.name.startswith(("tickgate_", "process_"))
    }
    # A histogram's creation time parses as a family of its own (documented with it).
    return {n for n in names if not (n.endswith("_created") and n[: -len("_created")] in names)}


@pytest.fixture
async def every_metric(tmp_path) -> set[str]:
    """The families of a started gateway with the embedded ledger, plus the Kafka source's."""
    settings = make_settings(tmp_path)
    async with running_gateway(settings) as gw:
        kafka = dataclasses.replace(settings.kafka, bootstrap="127.0.0.1:9")
        # Built, never started: it registers its series on the gateway's metrics.
        KafkaSource(kafka, gw.gateway.master, clock=gw.gateway.clock, metrics=gw.gateway.metrics)
        return exposed_metrics(gw)


@pytest.mark.e2e
def test_every_exposed_metric_is_documented(every_metric):
    ours = {m for m in every_metric if m.startswith("tickgate_")}
    assert ours - documented_metrics() == set()


@pytest.mark.e2e
def test_every_documented_metric_is_exposed(every_metric):
    assert documented_metrics() - every_metric == set()


def test_the_reader_finds_metrics_in_the_reference():
    assert {"tickgate_tick_to_push_seconds", "tickgate_ws_closes_total"} <= documented_metrics()


@pytest.mark.e2e
def test_every_metric_the_dashboard_uses_exists(every_metric):
    exposed = every_metric | {n.removesuffix("_total") for n in every_metric}
    used = {n.removesuffix("_total") for n in used_metrics(dashboard_exprs())}
    assert used - exposed == set()


@pytest.mark.e2e
def test_every_metric_the_alert_rules_use_exists(every_metric):
    exposed = every_metric | {n.removesuffix("_total") for n in every_metric}
    used = {n.removesuffix("_total") for n in used_metrics(list(alert_rules().values()))}
    assert used - exposed == set()


def test_the_dashboard_and_the_rules_read_the_operators_metrics():
    assert "tickgate_tick_to_push_seconds" in used_metrics(dashboard_exprs())
    assert "tickgate_kafka_consumer_lag" in used_metrics(list(alert_rules().values()))


def test_every_alert_rule_has_a_duration_severity_and_summary():
    text = ALERTS.read_text(encoding="utf-8")
    blocks = re.split(r"^ +- alert: ", text, flags=re.MULTILINE)[1:]
    assert len(blocks) == len(alert_rules())
    for block in blocks:
        assert re.search(r"^ +for: \d+m$", block, re.MULTILINE), block
        assert re.search(r"^ +severity: (critical|warning)$", block, re.MULTILINE), block
        assert re.search(r"^ +summary: ", block, re.MULTILINE), block


def test_every_alert_rule_is_documented_and_every_documented_alert_exists():
    assert documented_alerts() == set(alert_rules())


def test_dashboard_panels_have_unique_ids_and_a_query_each():
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    panels = dashboard["panels"]
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids))
    assert all(p["targets"] for p in panels if p["type"] != "row")


def log_calls(source: str) -> Iterator[tuple[int, str | None]]:
    """Each log call's line and the literal event it names (None when it names none)."""
    for node in ast.walk(ast.parse(source)):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        target = node.func.value
        name = target.id if isinstance(target, ast.Name) else getattr(target, "attr", None)
        if node.func.attr not in LOG_LEVELS or name not in LOGGERS:
            continue
        event = None
        for keyword in node.keywords:
            if keyword.arg == "extra" and isinstance(keyword.value, ast.Dict):
                for key, value in zip(keyword.value.keys, keyword.value.values, strict=True):
                    if isinstance(key, ast.Constant) and key.value == "event":
                        assert isinstance(value, ast.Constant), "an event name is a literal"
                        assert isinstance(value.value, str)
                        event = value.value
        yield node.lineno, event


def code_log_calls() -> dict[str, str | None]:
    """``path:line`` of every log call of our packages, and its event."""
    calls = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            for line, event in log_calls(path.read_text(encoding="utf-8")):
                calls[f"{path.relative_to(ROOT)}:{line}"] = event
    return calls


def documented_log_events() -> set[str]:
    logging_section = section(DOCS / "operations.md", "## Logging")
    # The audit log's events are records of their own (docs: "The audit log").
    logging_section = re.sub(
        r"^### The audit log\n.*?(?=^### )", "", logging_section, flags=re.MULTILINE | re.DOTALL
    )
    return set(re.findall(r"^\| `([a-z_]+\.[a-z_]+)` \|", logging_section, re.MULTILINE))


def test_every_log_call_names_an_event():
    assert [where for where, event in code_log_calls().items() if event is None] == []


def test_every_log_event_is_documented():
    assert {e for e in code_log_calls().values() if e} - documented_log_events() == set()


def test_every_documented_log_event_exists():
    assert documented_log_events() - {e for e in code_log_calls().values() if e} == set()


def test_the_log_reader_finds_events_and_calls_without_one():
    source = (
        'logger.info("a %s", x, extra={"event": "feed.up"})\nself.log.warning("b")\nprint("c")\n'
    )

    assert list(log_calls(source)) == [(1, "feed.up"), (2, None)]
    assert "service.started" in documented_log_events()
