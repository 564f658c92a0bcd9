"""Every error and close code of docs/protocol.md, over a real socket.

Errors that keep the connection open are followed by a ping that must be
answered, which proves the connection survived.
"""

from __future__ import annotations

import pytest
from websockets.exceptions import ConnectionClosed

from gateway.ws import closecodes
from tests.builders import make_settings
from tests.harness import ScriptedSource, client, running_gateway

pytestmark = pytest.mark.e2e


async def _assert_still_open(c) -> None:
    pong = await c.request({"op": "ping", "id": "still-open"})
    assert pong["type"] == "pong"


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ("{not json", "bad_json"),
        ('{"op":"ping","x":NaN}', "bad_json"),
        ("[1, 2]", "bad_request"),
        ('{"op":"ping","id":{"nested":1}}', "bad_request"),
        ('{"op":"subscribe","channel":"quotes","symbols":[]}', "bad_request"),
        ('{"op":"subscribe","channel":"quotes","symbols":"AAPL"}', "bad_request"),
        ('{"op":"fly"}', "unknown_op"),
        ('{"channel":"quotes"}', "unknown_op"),
        ('{"op":"subscribe","channel":"news","symbols":["AAPL"]}', "unknown_channel"),
        ('{"op":"subscribe","channel":"quotes","symbols":["AAPL","NOPE"]}', "unknown_symbol"),
        ('{"op":"auth"}', "bad_request"),
    ],
)
async def test_bad_message_gets_error_and_connection_stays_open(tmp_path, raw, code):
    async with (
        running_gateway(make_settings(tmp_path), source=ScriptedSource()) as gw,
        client(gw.ws_url) as c,
    ):
        await c.ws.send(raw)
        error = await c.until(lambda m: m["type"] == "error")
        await _assert_still_open(c)

    assert error["code"] == code
    assert error["retry"] is False
    assert gw.gateway.metrics.counters.ws_errors[code] == 1


async def test_unknown_symbol_error_lists_symbols_and_subscribes_nothing(tmp_path):
    async with (
        running_gateway(make_settings(tmp_path), source=ScriptedSource()) as gw,
        client(gw.ws_url) as c,
    ):
        error = await c.request(
            {"op": "subscribe", "channel": "quotes", "symbols": ["AAPL", "ZZZZ"], "id": 7}
        )
        channel = gw.gateway.quotes.topic

    assert error["code"] == "unknown_symbol"
    assert error["symbols"] == ["ZZZZ"]
    assert channel.subscriber_count() == 0


async def test_binary_frame_gets_bad_frame(tmp_path):
    async with (
        running_gateway(make_settings(tmp_path), source=ScriptedSource()) as gw,
        client(gw.ws_url) as c,
    ):
        await c.ws.send(b'{"op":"ping"}')
        error = await c.until(lambda m: m["type"] == "error")
        await _assert_still_open(c)

    assert error["code"] == "bad_frame"


async def test_fragmented_message_is_reassembled(tmp_path):
    async with (
        running_gateway(make_settings(tmp_path), source=ScriptedSource()) as gw,
        client(gw.ws_url) as c,
    ):
        await c.ws.send(['{"op":"ping",', '"id":"frag"}'])
        pong = await c.until(lambda m: m.get("id") == "frag")

    assert pong["type"] == "pong"


async def test_too_many_subscriptions_is_refused_whole(tmp_path):
    settings = make_settings(tmp_path, ws={"max_subscriptions": 3})
    async with running_gateway(settings, source=ScriptedSource()) as gw, client(gw.ws_url) as c:
        ok = await c.request(
            {"op": "subscribe", "channel": "quotes", "symbols": ["AAPL", "MSFT"], "id": 1}
        )
        error = await c.request(
            {"op": "subscribe", "channel": "quotes", "symbols": ["NVDA", "AMZN"], "id": 2}
        )
        again = await c.request(
            {"op": "subscribe", "channel": "quotes", "symbols": ["AAPL", "NVDA"], "id": 3}
        )

    assert ok["type"] == "subscribed"
    assert (error["code"], error["limit"]) == ("too_many_subscriptions", 3)
    assert again["type"] == "subscribed"  # AAPL was already counted; NVDA makes 3


async def test_flood_is_rate_limited_then_closed_at_the_abuse_threshold(tmp_path):
    settings = make_settings(
        tmp_path, ws={"inbound_rate_per_s": 1.0, "inbound_burst": 2, "error_limit": 5}
    )
    async with running_gateway(settings, source=ScriptedSource()) as gw, client(gw.ws_url) as c:
        for i in range(20):
            try:
                await c.send({"op": "ping", "id": i})
            except ConnectionClosed:
                break
        code, reason = await c.closed()

    errors = [m for m in c.received if m["type"] == "error"]
    pongs = [m for m in c.received if m["type"] == "pong"]
    assert len(pongs) == 2  # the burst
    assert [e["code"] for e in errors[:6]] == ["rate_limited"] * 6
    assert all(e["retry"] is True and e["retry_after_ms"] > 0 for e in errors[:6])
    assert errors[-1]["code"] == "too_many_errors"
    assert (code, reason) == (closecodes.POLICY_VIOLATION, "too_many_errors")


async def test_repeated_bad_messages_close_with_policy_violation(tmp_path):
    settings = make_settings(tmp_path, ws={"error_limit": 3})
    async with running_gateway(settings, source=ScriptedSource()) as gw, client(gw.ws_url) as c:
        for _ in range(4):
            await c.ws.send("nope")
        code, _ = await c.closed()

    assert [m["code"] for m in c.received] == ["bad_json"] * 4 + ["too_many_errors"]
    assert code == closecodes.POLICY_VIOLATION
    assert gw.gateway.metrics.counters.ws_closes[str(closecodes.POLICY_VIOLATION)] == 1


async def test_message_over_the_limit_gets_error_and_close_1009(tmp_path):
    settings = make_settings(tmp_path, ws={"max_inbound_bytes": 100})
    async with running_gateway(settings, source=ScriptedSource()) as gw, client(gw.ws_url) as c:
        await c.send({"op": "ping", "padding": "x" * 150})
        code, reason = await c.closed()

    assert c.received[0]["code"] == "message_too_big"
    assert (code, reason) == (closecodes.MESSAGE_TOO_BIG, "message_too_big")


async def test_message_far_over_the_limit_is_cut_off_by_the_transport_with_1009(tmp_path):
    settings = make_settings(tmp_path, ws={"max_inbound_bytes": 100})
    async with running_gateway(settings, source=ScriptedSource()) as gw, client(gw.ws_url) as c:
        await c.send({"op": "ping", "padding": "x" * 5000})
        code, _ = await c.closed()

    assert code == closecodes.MESSAGE_TOO_BIG


async def test_one_bad_client_does_not_touch_another(tmp_path):
    settings = make_settings(tmp_path, ws={"error_limit": 1})
    async with (
        running_gateway(settings, source=ScriptedSource()) as gw,
        client(gw.ws_url) as good,
        client(gw.ws_url) as bad,
    ):
        await good.request({"op": "subscribe", "channel": "quotes", "symbols": ["AAPL"], "id": 1})
        await bad.ws.send("x")
        await bad.ws.send("y")
        code, _ = await bad.closed()
        await _assert_still_open(good)

    assert code == closecodes.POLICY_VIOLATION


async def test_websocket_upgrade_on_another_path_is_refused_with_404(tmp_path):
    from websockets.exceptions import InvalidStatus

    async with running_gateway(make_settings(tmp_path), source=ScriptedSource()) as gw:
        with pytest.raises(InvalidStatus) as refused:
            async with client(gw.ws_url.replace("/ws", "/nope")):
                pass

    assert refused.value.response.status_code == 404
