"""Connection admission: capacity, shedding order and the health headroom."""

from __future__ import annotations

import resource

import pytest

from gateway.admission import ConnectionAdmission, open_file_limit
from gateway.metrics import Metrics


class Conn:
    def __init__(self, name: str, *, is_sheddable: bool = True) -> None:
        self.name = name
        self.sheddable = is_sheddable
        self.is_shed = False

    def is_sheddable(self) -> bool:
        return self.sheddable

    def shed(self) -> None:
        self.is_shed = True


def admission(capacity: int, headroom: int = 1) -> tuple[ConnectionAdmission, Metrics]:
    metrics = Metrics()
    return ConnectionAdmission(
        capacity=capacity, health_headroom=headroom, metrics=metrics
    ), metrics


def test_connections_within_capacity_are_all_admitted():
    gate, _ = admission(3)
    conns = [Conn(str(i)) for i in range(3)]

    for c in conns:
        gate.admit(c, c)

    assert gate.open_count == 3
    assert not any(c.is_shed for c in conns)


def test_past_capacity_the_oldest_sheddable_connection_is_shed():
    gate, metrics = admission(2)
    a, b, c = Conn("a"), Conn("b"), Conn("c")
    gate.admit(a, a)
    gate.admit(b, b)

    gate.admit(c, c)

    assert (a.is_shed, b.is_shed, c.is_shed) == (True, False, False)
    assert gate.open_count == 2
    assert metrics.counters.connections_closed == {"shed": 1}


def test_a_settled_connection_is_skipped_and_the_next_oldest_shed():
    gate, _ = admission(2)
    a, b, c = Conn("a"), Conn("b"), Conn("c")
    gate.admit(a, a)
    gate.admit(b, b)
    gate.settle(a)  # a request in progress

    gate.admit(c, c)

    assert (a.is_shed, b.is_shed, c.is_shed) == (False, True, False)


def test_a_connection_that_stopped_being_sheddable_is_kept():
    gate, _ = admission(2)
    a, b, c = Conn("a"), Conn("b"), Conn("c")
    gate.admit(a, a)
    gate.admit(b, b)
    a.sheddable = False  # a WebSocket that authenticated

    gate.admit(c, c)

    assert (a.is_shed, b.is_shed, c.is_shed) == (False, True, False)


def test_with_nothing_to_shed_the_new_connection_is_refused():
    gate, metrics = admission(2)
    a, b, c = Conn("a"), Conn("b"), Conn("c")
    gate.admit(a, a)
    gate.admit(b, b)
    gate.settle(a)
    gate.settle(b)

    gate.admit(c, c)

    assert (a.is_shed, b.is_shed, c.is_shed) == (False, False, True)
    assert gate.open_count == 2
    assert metrics.counters.connections_closed == {"capacity": 1}


def test_an_unsettled_connection_is_the_newest_candidate():
    gate, _ = admission(3)
    a, b, c, d = Conn("a"), Conn("b"), Conn("c"), Conn("d")
    for x in (a, b, c):
        gate.admit(x, x)
    gate.settle(a)
    gate.unsettle(a, a)  # idle again, after b and c

    gate.admit(d, d)

    assert (a.is_shed, b.is_shed) == (False, True)


def test_release_is_idempotent_and_frees_room():
    gate, _ = admission(1)
    a, b = Conn("a"), Conn("b")
    gate.admit(a, a)
    gate.release(a)
    gate.release(a)

    gate.admit(b, b)

    assert gate.open_count == 1
    assert not b.is_shed


def test_a_websocket_upgrade_past_the_headroom_sheds_the_oldest_to_make_room():
    gate, _ = admission(4, headroom=2)
    conns = [Conn(str(i)) for i in range(4)]
    for c in conns:
        gate.admit(c, c)
    upgrading = conns[-1]
    gate.settle(upgrading)

    assert gate.admit_websocket(upgrading)
    assert [c.is_shed for c in conns] == [True, True, False, False]


def test_a_websocket_upgrade_is_refused_when_only_the_headroom_is_left():
    gate, metrics = admission(4, headroom=2)
    conns = [Conn(str(i)) for i in range(3)]
    for c in conns:
        gate.admit(c, c)
        gate.settle(c)

    assert not gate.admit_websocket(conns[-1])
    assert not any(c.is_shed for c in conns)
    assert metrics.counters.connections_closed == {"health_headroom": 1}


def test_open_file_limit_is_the_soft_limit():
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)

    assert open_file_limit() == (soft if soft != resource.RLIM_INFINITY else 2**31)


@pytest.mark.parametrize("capacity", [0, 1, 2])
def test_a_capacity_at_or_below_the_headroom_still_admits_one_connection(capacity):
    gate, _ = admission(capacity, headroom=2)

    assert gate.capacity >= 1
    assert gate.health_headroom < gate.capacity
