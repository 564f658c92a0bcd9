import pytest

from orders.ratelimit import SubmitRateLimiter
from orders.types import AccountId

NS = 1_000_000_000
A = AccountId("A")


def test_a_full_bucket_allows_burst_submits_then_denies():
    limiter = SubmitRateLimiter(10, 3, max_accounts=10)

    results = [limiter.try_acquire(A, 0) for _ in range(4)]

    assert results[:3] == [0, 0, 0]
    assert results[3] == NS // 10  # one token comes back every 100 ms


def test_tokens_refill_at_the_rate():
    limiter = SubmitRateLimiter(10, 1, max_accounts=10)
    limiter.try_acquire(A, 0)

    early = limiter.try_acquire(A, NS // 10 - 1)
    on_time = limiter.try_acquire(A, NS // 10)

    assert early == 1
    assert on_time == 0


def test_a_denial_does_not_consume_a_token():
    limiter = SubmitRateLimiter(2, 1, max_accounts=10)
    limiter.try_acquire(A, 0)
    for t in range(1, 10):
        limiter.try_acquire(A, t)

    assert limiter.try_acquire(A, NS // 2) == 0


def test_the_bucket_never_exceeds_its_burst():
    limiter = SubmitRateLimiter(100, 2, max_accounts=10)
    limiter.try_acquire(A, 0)

    later = [limiter.try_acquire(A, 3600 * NS) for _ in range(3)]

    assert later[:2] == [0, 0]
    assert later[2] > 0


def test_accounts_have_separate_buckets():
    limiter = SubmitRateLimiter(1, 1, max_accounts=10)
    limiter.try_acquire(A, 0)

    assert limiter.try_acquire(AccountId("B"), 0) == 0


def test_past_max_accounts_the_least_recent_is_forgotten_with_a_full_bucket():
    limiter = SubmitRateLimiter(1, 1, max_accounts=2)
    limiter.try_acquire(A, 0)
    limiter.try_acquire(AccountId("B"), 0)
    limiter.try_acquire(AccountId("C"), 0)

    assert limiter.try_acquire(A, 0) == 0
    assert limiter.try_acquire(AccountId("C"), 0) > 0


@pytest.mark.parametrize(("rate", "burst", "accounts"), [(0, 1, 1), (1, 0, 1), (1, 1, 0)])
def test_non_positive_settings_are_refused(rate, burst, accounts):
    with pytest.raises(ValueError, match="positive"):
        SubmitRateLimiter(rate, burst, max_accounts=accounts)
