"""Matching accepted orders to their first fill event."""

from __future__ import annotations

from load_tests.fills import FillMatcher


def test_a_fill_after_its_acceptance_records_the_time_from_the_scheduled_send():
    matcher = FillMatcher()
    matcher.accepted("ord_1", 1_000_000)

    matcher.fill("ord_1", 6_000_000)

    assert matcher.filled == 1
    assert matcher.latency.hdr.get_max_value() // 1000 == 5  # ms
    assert not matcher.pending


def test_a_fill_seen_before_its_202_is_matched_when_the_order_registers():
    matcher = FillMatcher()
    matcher.fill("ord_1", 9_000_000)

    matcher.accepted("ord_1", 2_000_000)

    assert matcher.filled == 1
    assert matcher.latency.count == 1
    assert not matcher.early


def test_later_fills_of_an_order_are_not_counted_again():
    matcher = FillMatcher()
    matcher.accepted("ord_1", 0)
    matcher.fill("ord_1", 1_000_000)

    matcher.fill("ord_1", 2_000_000)

    assert matcher.filled == 1


def test_a_rejected_order_leaves_the_pending_set_without_a_latency():
    matcher = FillMatcher()
    matcher.accepted("ord_1", 0)

    matcher.rejected_order("ord_1")

    assert (matcher.rejected, matcher.filled, matcher.latency.count) == (1, 0, 0)
    assert matcher.settled.is_set()


async def test_wait_settled_returns_once_every_order_is_accounted_for():
    matcher = FillMatcher()
    matcher.accepted("ord_1", 0)
    matcher.fill("ord_1", 1)

    await matcher.wait_settled(timeout_s=5)

    assert not matcher.pending
