"""Expiry instants: the listing venue's close in its own time zone, daylight saving included.

Expected instants are worked out by hand from each zone's rules: the US
switches on the second Sunday of March and the first Sunday of November
(2026-11-01, 2027-03-14), the EU on the last Sundays of March and October
(2027-03-28), Japan never.
"""

from __future__ import annotations

import datetime as dt

import pytest

from gateway.refdata import load_master
from portfolio.valuation import NS_PER_YEAR, InstrumentTerms
from pricing.errors import ReferenceDataError
from pricing.instruments import CSV_COLUMNS, parse_instrument_csv
from pricing.venues import VENUES, venue_code
from tests.reference.portfolio import new_york_close_ns


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> dt.datetime:
    return dt.datetime(year, month, day, hour, minute, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("venue", "day", "expected"),
    [
        ("OPRA", dt.date(2026, 12, 18), utc(2026, 12, 18, 21, 0)),  # 16:00 EST, UTC-5
        ("OPRA", dt.date(2027, 3, 12), utc(2027, 3, 12, 21, 0)),  # the Friday before the switch
        ("OPRA", dt.date(2027, 3, 19), utc(2027, 3, 19, 20, 0)),  # 16:00 EDT, UTC-4
        ("XNAS", dt.date(2026, 10, 30), utc(2026, 10, 30, 20, 0)),  # EDT until 2026-11-01
        ("XNYS", dt.date(2026, 11, 6), utc(2026, 11, 6, 21, 0)),  # EST again
        ("XCME", dt.date(2026, 12, 18), utc(2026, 12, 18, 22, 0)),  # 16:00 CST, UTC-6
        ("XCBT", dt.date(2027, 3, 19), utc(2027, 3, 19, 21, 0)),  # 16:00 CDT, UTC-5
        ("XEUR", dt.date(2027, 3, 19), utc(2027, 3, 19, 21, 0)),  # 22:00 CET: EU not yet switched
        ("XEUR", dt.date(2027, 6, 18), utc(2027, 6, 18, 20, 0)),  # 22:00 CEST
        ("XLON", dt.date(2026, 12, 18), utc(2026, 12, 18, 16, 30)),  # GMT
        ("XLON", dt.date(2027, 6, 18), utc(2027, 6, 18, 15, 30)),  # BST
        ("IFEU", dt.date(2026, 12, 18), utc(2026, 12, 18, 21, 0)),
        ("XTKS", dt.date(2026, 12, 10), utc(2026, 12, 10, 6, 30)),  # 15:30 JST, UTC+9
    ],
)
def test_venue_close_in_utc_follows_the_venues_daylight_saving(
    venue: str, day: dt.date, expected: dt.datetime
) -> None:
    close = VENUES[venue].close_on(day)

    assert close == expected


@pytest.mark.parametrize(
    ("instrument_id", "code"),
    [("AAPL.XNAS", "XNAS"), ("BRK.B.XNYS", "XNYS"), ("SAN.MC.XMAD", "XMAD"), ("AAPL", "")],
)
def test_venue_code_is_the_last_dotted_part_of_the_id(instrument_id: str, code: str) -> None:
    assert venue_code(instrument_id) == code


def test_shipped_march_options_expire_an_hour_earlier_in_utc_than_december_ones() -> None:
    master = load_master()

    december = master[master.ix("SPY261218C670")].expires_at
    march = master[master.ix("SPY270319C670")].expires_at

    assert (december, march) == (utc(2026, 12, 18, 21, 0), utc(2027, 3, 19, 20, 0))


def test_time_to_a_march_expiry_half_an_hour_before_the_new_york_close() -> None:
    # At 19:30 UTC on 2027-03-19 a 16:00 New York expiry is 30 minutes away
    # (20:00 UTC under daylight saving), not the 90 that 21:00 UTC would give.
    master = load_master()
    terms = InstrumentTerms.from_master(master, ("USD", "EUR", "GBP", "JPY"), {})
    now_ns = int(utc(2027, 3, 19, 19, 30).timestamp()) * 1_000_000_000

    left_years = (terms.expiry_ns[master.ix("SPY270319C670")] - now_ns) / NS_PER_YEAR

    assert left_years * 365 * 24 * 60 == pytest.approx(30.0, abs=1e-9)


def test_parse_an_expiring_instrument_on_an_unknown_venue_raises_naming_its_line() -> None:
    header = ",".join(CSV_COLUMNS)
    future = "ESZ6.XXXX,ESZ6,future,USD,0.25,1,50,equity_index,,,,2026-12-18,,7000,0.17,1,"
    stock = "AAA.XXXX,AAA,equity,USD,0.01,1,1,technology,,,,,,100,0.3,1,"

    with pytest.raises(ReferenceDataError, match="line 3: an expiring instrument") as caught:
        parse_instrument_csv("\n".join([header, stock, future]) + "\n")

    assert caught.value.line == 3  # the stock does not expire: any venue will do


def test_every_shipped_option_expires_when_the_hand_rule_says() -> None:
    master = load_master()
    terms = InstrumentTerms.from_master(master, ("USD", "EUR", "GBP", "JPY"), {})

    options = [
        (ix, i, i.expiry)
        for ix, i in enumerate(master)
        if i.expiry is not None and i.type.value == "option"
    ]

    assert options
    for ix, option, expiry in options:
        assert terms.expiry_ns[ix] == new_york_close_ns(expiry), option.symbol
