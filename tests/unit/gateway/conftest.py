"""Fixtures for the gateway unit tests."""

from __future__ import annotations

import orjson
import pytest

from gateway.access import PrincipalSlots
from gateway.auth import TokenVerifier
from gateway.ws.channelspecs import OrdersChannelSpec, PortfolioChannelSpec, QuotesChannelSpec
from gateway.ws.session import ClientSession
from tests.builders import NS, TEST_SECRET, ManualClock, make_settings
from tests.unit.gateway.ws.sessiondriver import ACCOUNTS, SYMBOLS, T0_S


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(T0_S * NS)


@pytest.fixture
def new_session(tmp_path, clock):
    """Build a ClientSession at ``clock.now``: ``new_session(max_subscriptions=3)``."""

    def build(
        *, allow_anonymous: bool = True, slots: PrincipalSlots | None = None, **ws: object
    ) -> ClientSession:
        settings = make_settings(tmp_path, ws=ws)
        return ClientSession(
            settings.ws,
            channels={
                "quotes": QuotesChannelSpec(SYMBOLS),
                "portfolio": PortfolioChannelSpec(ACCOUNTS),
                "orders": OrdersChannelSpec(ACCOUNTS),
            },
            verifier=TokenVerifier(TEST_SECRET, issuer="tickgate", leeway_s=0),
            allow_anonymous_quotes=allow_anonymous,
            decode_json=orjson.loads,
            now_ns=clock.now,
            principal_slots=slots,
        )

    return build
