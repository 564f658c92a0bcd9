"""``--slo`` parsing and evaluation."""

from __future__ import annotations

import pytest

from load_tests.slo import Objective, SloError, evaluate, parse_slo


def test_bare_equals_is_an_upper_bound_for_latency_and_counts() -> None:
    assert parse_slo("p99_ms=100,gaps=0") == (
        Objective("p99_ms", "<=", 100.0),
        Objective("gaps", "<=", 0.0),
    )


def test_bare_equals_is_a_lower_bound_for_throughput() -> None:
    assert parse_slo("delivered_per_s=50000") == (Objective("delivered_per_s", ">=", 50_000.0),)


def test_explicit_operators_are_kept_and_blanks_ignored() -> None:
    assert parse_slo(" p999_ms < 250 , , reconnects>=0 ") == (
        Objective("p999_ms", "<", 250.0),
        Objective("reconnects", ">=", 0.0),
    )


def test_an_empty_text_has_no_objectives() -> None:
    assert parse_slo("") == ()


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("p98_ms=10", "unknown objective 'p98_ms'"),
        ("p99_ms=fast", "'fast' is not a number"),
        ("p99_ms=nan", "must be finite"),
        ("p99_ms", "is not name<=number"),
        ("gaps==0", "is not a number"),
    ],
)
def test_bad_objectives_raise_naming_the_item(text: str, named: str) -> None:
    with pytest.raises(SloError, match=named):
        parse_slo(text)


def test_evaluate_checks_each_objective_against_its_actual() -> None:
    objectives = parse_slo("p99_ms=100,gaps=0,delivered_per_s=1000")

    checks = evaluate(objectives, {"p99_ms": 120.5, "gaps": 0, "delivered_per_s": 1500.0})

    assert [(c.name, c.actual, c.ok) for c in checks] == [
        ("p99_ms", 120.5, False),
        ("gaps", 0, True),
        ("delivered_per_s", 1500.0, True),
    ]


def test_a_missing_actual_fails_its_objective() -> None:
    (check,) = evaluate(parse_slo("p99_ms=100"), {"p99_ms": None})

    assert check.ok is False


def test_limits_are_inclusive_for_bare_equals() -> None:
    (check,) = evaluate(parse_slo("gaps=0"), {"gaps": 0})

    assert check.ok is True
