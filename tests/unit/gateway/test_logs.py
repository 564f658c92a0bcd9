"""ThrottleFilter: one record per logger and template per interval, with a suppressed count;
JsonFormatter: one JSON object per record."""

from __future__ import annotations

import logging
import sys

import orjson
import pytest

from gateway.logs import UNNAMED_EVENT, JsonFormatter, ThrottleFilter


class FakeMonotonic:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def monotonic(monkeypatch) -> FakeMonotonic:
    fake = FakeMonotonic()
    monkeypatch.setattr("gateway.logs.time.monotonic", fake)
    return fake


class _Collect(logging.Handler):
    def __init__(self, records: list[logging.LogRecord]) -> None:
        super().__init__()
        self.records = records

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


SOURCES = ["gateway.marketdata.kafka", "gateway.marketdata.upstream"]


def record(
    name: str = "gateway.marketdata.kafka", msg: str = "broker down: %s"
) -> logging.LogRecord:
    return logging.LogRecord(name, logging.WARNING, __file__, 1, msg, ("refused",), None)


def test_first_record_passes_unchanged(monotonic):
    throttle = ThrottleFilter(SOURCES, interval_s=10.0)
    first = record()

    assert throttle.filter(first)
    assert first.msg == "broker down: %s"


def test_repeats_within_the_interval_are_suppressed(monotonic):
    throttle = ThrottleFilter(SOURCES, interval_s=10.0)
    throttle.filter(record())

    monotonic.now += 1
    second = throttle.filter(record())
    monotonic.now += 8.9
    third = throttle.filter(record())

    assert (second, third) == (False, False)


def test_next_record_after_the_interval_reports_the_suppressed_count(monotonic):
    throttle = ThrottleFilter(SOURCES, interval_s=10.0)
    throttle.filter(record())
    for _ in range(2):
        monotonic.now += 1
        throttle.filter(record())
    monotonic.now += 9  # 11 s after the one that passed
    later = record()

    assert throttle.filter(later)
    assert later.msg == "broker down: %s [2 similar suppressed]"
    assert later.getMessage() == "broker down: refused [2 similar suppressed]"


def test_record_after_a_quiet_interval_has_no_suppressed_note(monotonic):
    throttle = ThrottleFilter(SOURCES, interval_s=10.0)
    throttle.filter(record())
    monotonic.now += 11
    later = record()

    assert throttle.filter(later)
    assert later.msg == "broker down: %s"


def test_different_templates_are_throttled_separately(monotonic):
    throttle = ThrottleFilter(SOURCES, interval_s=10.0)
    throttle.filter(record(msg="broker down: %s"))

    assert throttle.filter(record(msg="bad record: %s"))


def test_same_template_from_another_throttled_logger_passes(monotonic):
    throttle = ThrottleFilter(SOURCES, interval_s=10.0)
    throttle.filter(record(name="gateway.marketdata.kafka"))

    assert throttle.filter(record(name="gateway.marketdata.upstream"))


def test_loggers_outside_the_prefixes_are_never_throttled(monotonic):
    throttle = ThrottleFilter(SOURCES, interval_s=10.0)
    records = [record(name="gateway.marketdata.pipeline") for _ in range(3)]

    passed = [throttle.filter(r) for r in records]

    assert passed == [True, True, True]
    assert [r.msg for r in records] == ["broker down: %s"] * 3


def test_connection_log_repeats_across_connections_are_throttled_as_one(monotonic):
    from gateway.ws.connection import _ConnectionLog

    throttle = ThrottleFilter(["gateway.ws.connection"], interval_s=10.0)
    records: list[logging.LogRecord] = []
    logger = logging.getLogger("gateway.ws.connection.test-throttle")
    logger.propagate = False
    handler = _Collect(records)
    handler.addFilter(throttle)
    logger.addHandler(handler)
    try:
        for conn_id in range(5):
            _ConnectionLog(logger, {"conn_id": conn_id, "account_id": "bob"}).warning("flood")
    finally:
        logger.removeHandler(handler)

    assert len(records) == 1
    assert records[0].getMessage() == "[conn 0 sub bob] flood"


def test_json_formatter_writes_one_line_with_event_message_and_extras():
    formatter = JsonFormatter()
    try:
        raise ValueError("boom\nsecond line")
    except ValueError:
        exc_info = sys.exc_info()
    rec = logging.LogRecord(
        "gateway.x", logging.WARNING, "x.py", 1, "feed %s down", ("k",), exc_info
    )
    rec.created = 1_800_000_000.25
    rec.event = "feed.down"
    rec.trace_id = "0af7651916cd43dd8448eb211c80319c"
    rec.throttle_key = "feed %s down"

    line = formatter.format(rec)

    body = orjson.loads(line)
    assert "\n" not in line
    assert body["ts"] == "2027-01-15T08:00:00.250Z"
    assert (body["level"], body["logger"], body["event"]) == ("WARNING", "gateway.x", "feed.down")
    assert body["message"] == "feed k down"
    assert body["trace_id"] == "0af7651916cd43dd8448eb211c80319c"
    assert "throttle_key" not in body
    assert "ValueError: boom" in body["exception"]


def test_json_formatter_names_a_library_record_log():
    rec = logging.LogRecord("uvicorn.error", logging.INFO, "x.py", 1, "Started", None, None)

    body = orjson.loads(JsonFormatter().format(rec))

    assert body["event"] == UNNAMED_EVENT == "log"
