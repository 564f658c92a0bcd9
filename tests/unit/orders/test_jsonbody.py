from decimal import Decimal

import pytest

from orders.jsonbody import (
    MAX_DEPTH,
    JsonBodyError,
    canonical_json,
    parse_json_body,
    request_fingerprint,
)


def test_numbers_parse_as_decimal_never_float():
    parsed = parse_json_body(b'{"a": 0.1, "b": 3}')

    assert parsed == {"a": Decimal("0.1"), "b": 3}
    assert isinstance(parsed["a"], Decimal)


@pytest.mark.parametrize("body", [b'{"a": NaN}', b'{"a": Infinity}', b'{"a": -Infinity}'])
def test_non_standard_constants_are_refused(body):
    with pytest.raises(JsonBodyError, match="not JSON"):
        parse_json_body(body)


def test_a_duplicate_key_is_refused_and_flagged():
    with pytest.raises(JsonBodyError) as caught:
        parse_json_body(b'{"quantity": "1", "quantity": "1000"}')

    assert caught.value.is_duplicate is True


@pytest.mark.parametrize("body", [b"", b"{", b"{'a': 1}", b"\xff\xfe", b"[1,]", b"1 2"])
def test_malformed_bodies_are_refused_without_the_duplicate_flag(body):
    with pytest.raises(JsonBodyError) as caught:
        parse_json_body(body)

    assert caught.value.is_duplicate is False


def test_nesting_beyond_the_limit_is_refused_before_decoding():
    deep = b"[" * (MAX_DEPTH + 1) + b"]" * (MAX_DEPTH + 1)

    with pytest.raises(JsonBodyError, match="nest"):
        parse_json_body(deep)


def test_nesting_at_the_limit_is_accepted():
    assert parse_json_body(b"[" * MAX_DEPTH + b"]" * MAX_DEPTH) is not None


def test_canonical_json_sorts_keys_and_drops_whitespace():
    value = parse_json_body(b'{ "b": [1, {"z": null, "y": true}], "a": "\xc3\xbc" }')

    assert canonical_json(value) == '{"a":"ü","b":[1,{"y":true,"z":null}]}'.encode()


def test_canonical_json_normalises_numbers():
    assert canonical_json({"a": Decimal("1.50"), "b": Decimal("100")}) == b'{"a":1.5,"b":100}'


def test_fingerprint_ignores_key_order_and_whitespace():
    first = parse_json_body(b'{"symbol":"AAPL","quantity":"10"}')
    second = parse_json_body(b'{\n  "quantity" : "10",\n  "symbol" : "AAPL"\n}')

    assert request_fingerprint("POST", "/v1/orders", first) == request_fingerprint(
        "POST", "/v1/orders", second
    )


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("PUT", "/v1/orders", {"quantity": "10"}),
        ("POST", "/v1/payments", {"quantity": "10"}),
        ("POST", "/v1/orders", {"quantity": "11"}),
        ("POST", "/v1/orders", {"quantity": "10.0"}),
        ("POST", "/v1/orders", {"quantity": "10", "x": None}),
    ],
)
def test_fingerprint_covers_method_path_and_body(method, path, body):
    reference = request_fingerprint("POST", "/v1/orders", {"quantity": "10"})

    assert request_fingerprint(method, path, body) != reference
