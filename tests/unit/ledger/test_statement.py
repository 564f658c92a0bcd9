"""The account statement's page walk and cursors (pure)."""

from __future__ import annotations

import pytest

from ledger.statement import parse_entry_cursor, statement_page

# (seq, n, ledger account id, asset, amount, transfer id, kind, ts_posted), newest first.
CASH, AAPL = 1, 2
ROWS = [
    (7, 1, CASH, "cash:USD", 300, "t-7", "deposit", 70),
    (5, 2, CASH, "cash:USD", -2_500, "t-5", "fill", 50),
    (5, 0, AAPL, "inst:AAPL", 10, "t-5", "fill", 50),
    (1, 1, CASH, "cash:USD", 10_000, "t-1", "deposit", 10),
]


def test_balances_walk_down_the_page_per_account():
    page = statement_page(ROWS, {CASH: 7_800, AAPL: 10}, limit=4)

    # 7,800 after the deposit of 300; 7,500 after the fill's 2,500; 10,000 after the first.
    assert [(e.seq, e.leg, e.balance_after) for e in page.entries] == [
        (7, 1, 7_800),
        (5, 2, 7_500),
        (5, 0, 10),
        (1, 1, 10_000),
    ]
    assert page.next_cursor is None


def test_a_row_past_the_limit_makes_the_last_entry_the_cursor():
    page = statement_page(ROWS, {CASH: 7_800, AAPL: 10}, limit=3)

    assert len(page.entries) == 3
    assert page.next_cursor == "5:0"
    assert parse_entry_cursor(page.next_cursor) == (5, 0)


def test_an_empty_page_has_no_cursor():
    page = statement_page([], {}, limit=3)

    assert (list(page.entries), page.next_cursor) == ([], None)


@pytest.mark.parametrize("cursor", ["", ":", "5", "5:", ":0", "a:0", "5:0:1", "-5:0", "5 :0"])
def test_a_cursor_no_page_handed_out_is_refused(cursor):
    with pytest.raises(ValueError, match="cursor must come from a previous page"):
        parse_entry_cursor(cursor)
