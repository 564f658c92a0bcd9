"""Operators' references agree with the code, both ways: the metrics reference of
docs/operations.md and the families a running gateway exposes."""

from __future__ import annotations

import dataclasses
import re

import pytest
from prometheus_client.parser import text_string_to_metric_families

from gateway.marketdata.kafka import KafkaSource
from tests.builders import make_settings
from tests.harness import RunningGateway, running_gateway
from tests.test_docs import DOCS, section

METRIC = re.compile(r"^\| `(tickgate_[a-z_]+)` \|", re.MULTILINE)


def documented_metrics() -> set[str]:
    return set(METRIC.findall(section(DOCS / "operations.md", "## Metrics reference")))


def exposed_metrics(gw: RunningGateway) -> set[str]:
    """Every tickgate_ family, as its name appears in the docs (counters with ``_total``)."""
    text = gw.gateway.metrics.exposition().decode()
    names = {
        f"{family.name}_total" if family.type == "counter" else family.name
        for family in text_string_to_metric_families(text)
        if family.name.startswith("tickgate_")
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
    assert every_metric - documented_metrics() == set()


@pytest.mark.e2e
def test_every_documented_metric_is_exposed(every_metric):
    assert documented_metrics() - every_metric == set()


def test_the_reader_finds_metrics_in_the_reference():
    assert {"tickgate_tick_to_push_seconds", "tickgate_ws_closes_total"} <= documented_metrics()
