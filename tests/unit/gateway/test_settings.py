"""Settings: building from TICKGATE_* keys, parsing, validation and secret handling."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from gateway.errors import SettingsError
from gateway.settings import Secret, Settings

SECRET = "s3cret-" + "q" * 40  # 47 characters, above the 32-character minimum


def from_env(tmp_path: Path, **keys: str) -> Settings:
    environ = {"TICKGATE_DATA_DIR": str(tmp_path), **keys}
    return Settings.from_env(environ)


def test_from_env_without_keys_builds_the_documented_defaults(tmp_path):
    environ = {"XDG_DATA_HOME": str(tmp_path)}

    settings = Settings.from_env(environ)

    assert settings.port == 8000
    assert settings.host == "127.0.0.1"
    assert settings.feed.source == "simulator"
    assert settings.ws.max_inbound_bytes == 16_384
    assert settings.fanout.write_buffer_low_bytes == 16_384
    assert settings.auth.jwt_secret is None
    assert settings.data_dir == tmp_path / "tickgate"


@pytest.mark.parametrize(
    ("key", "raw", "section", "name", "expected"),
    [
        ("TICKGATE_PORT", "9001", None, "port", 9001),
        ("TICKGATE_LOG_LEVEL", "DEBUG", None, "log_level", "DEBUG"),
        ("TICKGATE_FEED_STALE_AFTER_MS", "2500", "feed", "stale_after_ms", 2500),
        ("TICKGATE_WS_MAX_INBOUND_BYTES", "4096", "ws", "max_inbound_bytes", 4096),
        ("TICKGATE_WS_INBOUND_RATE_PER_S", "2.5", "ws", "inbound_rate_per_s", 2.5),
        ("TICKGATE_WS_PER_MESSAGE_DEFLATE", "yes", "ws", "per_message_deflate", True),
        ("TICKGATE_FANOUT_SWEEP_INTERVAL_MS", "1_000", "fanout", "sweep_interval_ms", 1000),
        ("TICKGATE_AUTH_ISSUER", "acme", "auth", "issuer", "acme"),
        ("TICKGATE_AUTH_ALLOW_ANONYMOUS_QUOTES", "off", "auth", "allow_anonymous_quotes", False),
        ("TICKGATE_SIMULATOR_SEED", "42", "simulator", "seed", 42),
        ("TICKGATE_KAFKA_TOPIC", "ticks.v2", "kafka", "topic", "ticks.v2"),
        ("TICKGATE_KAFKA_AUTO_OFFSET_RESET", "earliest", "kafka", "auto_offset_reset", "earliest"),
        ("TICKGATE_UPSTREAM_TS_UNIT", "ms", "upstream", "ts_unit", "ms"),
        ("TICKGATE_RISK_MIN_DAYS", "60", "risk", "min_days", 60),
        ("TICKGATE_RISK_HISTORY_DAYS", "0", "risk", "history_days", 0),
        ("TICKGATE_RISK_INTRADAY_HALF_LIFE_S", "7.5", "risk", "intraday_half_life_s", 7.5),
    ],
)
def test_env_key_sets_its_section_field(tmp_path, key, raw, section, name, expected):
    settings = from_env(tmp_path, **{key: raw})

    holder = settings if section is None else getattr(settings, section)
    assert getattr(holder, name) == expected


def test_env_key_for_a_path_field_sets_a_path(tmp_path):
    settings = from_env(tmp_path, TICKGATE_FEED_INSTRUMENTS_FILE="/srv/master.csv")

    assert settings.feed.instruments_file == Path("/srv/master.csv")


def test_empty_value_for_an_optional_field_means_unset(tmp_path):
    settings = from_env(tmp_path, TICKGATE_KAFKA_BOOTSTRAP="")

    assert settings.kafka.bootstrap is None


def test_tuple_setting_splits_on_commas_and_strips_blanks(tmp_path):
    settings = from_env(tmp_path, TICKGATE_UPSTREAM_SYMBOLS="a, b,c")

    assert settings.upstream.symbols == ("a", "b", "c")


def test_unknown_tickgate_key_raises_naming_the_key(tmp_path):
    with pytest.raises(SettingsError) as caught:
        from_env(tmp_path, TICKGATE_WS_MAX_INBOUND_BYTE="10")

    assert caught.value.key == "TICKGATE_WS_MAX_INBOUND_BYTE"


def test_risk_min_samples_of_per_second_returns_is_gone(tmp_path):
    # The daily model counts days (TICKGATE_RISK_MIN_DAYS); a deployment still
    # setting the old key hears about it instead of silently losing it.
    with pytest.raises(SettingsError) as caught:
        from_env(tmp_path, TICKGATE_RISK_MIN_SAMPLES="20")

    assert caught.value.key == "TICKGATE_RISK_MIN_SAMPLES"


def test_keys_without_the_tickgate_prefix_are_ignored(tmp_path):
    settings = from_env(tmp_path, PATH="/usr/bin", TICKGATEX_PORT="1")

    assert settings.port == 8000


@pytest.mark.parametrize(
    ("key", "raw"),
    [
        ("TICKGATE_PORT", "8.5"),
        ("TICKGATE_WS_MAX_SUBSCRIPTIONS", "many"),
        ("TICKGATE_WS_INBOUND_RATE_PER_S", "fast"),
        ("TICKGATE_WS_PER_MESSAGE_DEFLATE", "maybe"),
        ("TICKGATE_LOG_LEVEL", "debug"),
        ("TICKGATE_FEED_SOURCE", "carrier-pigeon"),
    ],
)
def test_unparseable_value_raises_naming_the_key(tmp_path, key, raw):
    with pytest.raises(SettingsError) as caught:
        from_env(tmp_path, **{key: raw})

    assert caught.value.key == key


@pytest.mark.parametrize(
    ("key", "raw"),
    [
        ("TICKGATE_WS_MAX_INBOUND_BYTES", "0"),
        ("TICKGATE_WS_INBOUND_RATE_PER_S", "-1"),
        ("TICKGATE_WS_ERROR_WINDOW_S", "nan"),
        ("TICKGATE_FANOUT_WRITE_BUFFER_LOW_BYTES", "65536"),
        ("TICKGATE_SIMULATOR_MARKET_SHARE", "1.5"),
        ("TICKGATE_AUTH_LEEWAY_S", "-1"),
        ("TICKGATE_UPSTREAM_SUBSCRIBE_TEMPLATE", '{"op":"subscribe"}'),
        ("TICKGATE_PORT", "70000"),
        ("TICKGATE_SHUTDOWN_TIMEOUT_S", "0"),
        ("TICKGATE_RISK_MIN_DAYS", "0"),
        ("TICKGATE_RISK_HISTORY_DAYS", "-1"),
        ("TICKGATE_RISK_INTRADAY_HALF_LIFE_S", "0"),
        ("TICKGATE_RISK_EWMA_LAMBDA", "1"),
    ],
)
def test_value_failing_validation_raises_naming_the_full_env_key(tmp_path, key, raw):
    with pytest.raises(SettingsError) as caught:
        from_env(tmp_path, **{key: raw})

    assert caught.value.key == key


def test_market_plus_sector_share_above_one_raises_naming_the_sector_share_key(tmp_path):
    with pytest.raises(SettingsError) as caught:
        from_env(
            tmp_path, TICKGATE_SIMULATOR_MARKET_SHARE="0.6", TICKGATE_SIMULATOR_SECTOR_SHARE="0.5"
        )

    assert caught.value.key == "TICKGATE_SIMULATOR_SECTOR_SHARE"


def test_low_water_mark_equal_to_high_raises(tmp_path):
    with pytest.raises(SettingsError) as caught:
        from_env(
            tmp_path,
            TICKGATE_FANOUT_WRITE_BUFFER_HIGH_BYTES="1000",
            TICKGATE_FANOUT_WRITE_BUFFER_LOW_BYTES="1000",
        )

    assert caught.value.key == "TICKGATE_FANOUT_WRITE_BUFFER_LOW_BYTES"


@pytest.mark.parametrize("key", ["TICKGATE_WS_AUTH_DEADLINE_S", "TICKGATE_WS_ERROR_WINDOW_S"])
def test_infinite_duration_raises_naming_the_key(tmp_path, key):
    # The session converts these to integer nanoseconds; infinity cannot be.
    with pytest.raises(SettingsError) as caught:
        from_env(tmp_path, **{key: "inf"})

    assert caught.value.key == key


def test_overrides_win_over_environ(tmp_path):
    environ = {"TICKGATE_DATA_DIR": str(tmp_path), "TICKGATE_PORT": "9001"}

    settings = Settings.from_env(environ, {"TICKGATE_PORT": "9002"})

    assert settings.port == 9002


def test_unknown_override_key_raises_naming_it(tmp_path):
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({"TICKGATE_DATA_DIR": str(tmp_path)}, {"TICKGATE_NOPE": "1"})

    assert caught.value.key == "TICKGATE_NOPE"


def test_secret_file_key_reads_the_secret_from_the_file(tmp_path):
    secret_file = tmp_path / "jwt"
    secret_file.write_text(SECRET + "\n", encoding="utf-8")

    settings = from_env(tmp_path, TICKGATE_AUTH_JWT_SECRET_FILE=str(secret_file))

    assert settings.auth.jwt_secret is not None
    assert settings.auth.jwt_secret.reveal() == SECRET


def test_secret_and_its_file_variant_together_raise(tmp_path):
    secret_file = tmp_path / "jwt"
    secret_file.write_text(SECRET, encoding="utf-8")

    with pytest.raises(SettingsError) as caught:
        from_env(
            tmp_path,
            TICKGATE_AUTH_JWT_SECRET=SECRET,
            TICKGATE_AUTH_JWT_SECRET_FILE=str(secret_file),
        )

    assert caught.value.key == "TICKGATE_AUTH_JWT_SECRET_FILE"


def test_missing_secret_file_raises_naming_the_file_key(tmp_path):
    with pytest.raises(SettingsError) as caught:
        from_env(tmp_path, TICKGATE_AUTH_JWT_SECRET_FILE=str(tmp_path / "absent"))

    assert caught.value.key == "TICKGATE_AUTH_JWT_SECRET_FILE"


def test_file_variant_of_a_non_secret_key_is_unknown(tmp_path):
    with pytest.raises(SettingsError) as caught:
        from_env(tmp_path, TICKGATE_AUTH_ISSUER_FILE=str(tmp_path / "issuer"))

    assert caught.value.key == "TICKGATE_AUTH_ISSUER_FILE"


def test_secret_of_31_characters_is_refused(tmp_path):
    with pytest.raises(SettingsError) as caught:
        from_env(tmp_path, TICKGATE_AUTH_JWT_SECRET="k" * 31)

    assert caught.value.key == "TICKGATE_AUTH_JWT_SECRET"


def test_secret_of_32_characters_is_accepted(tmp_path):
    settings = from_env(tmp_path, TICKGATE_AUTH_JWT_SECRET="k" * 32)

    assert settings.auth.jwt_secret == Secret("k" * 32)


def test_repr_of_settings_never_shows_the_secret(tmp_path):
    settings = from_env(tmp_path, TICKGATE_AUTH_JWT_SECRET=SECRET)

    text = repr(settings) + str(settings.auth) + str(settings.auth.jwt_secret)

    assert SECRET not in text
    assert "***" in text


def test_redacted_settings_mask_the_secret_and_list_every_key(tmp_path):
    settings = from_env(tmp_path, TICKGATE_AUTH_JWT_SECRET=SECRET)

    redacted = settings.redacted()

    assert SECRET not in repr(redacted)
    assert redacted["TICKGATE_AUTH_JWT_SECRET"] == "***"
    assert redacted["TICKGATE_WS_MAX_INBOUND_BYTES"] == 16_384
    assert redacted["TICKGATE_DATA_DIR"] == str(tmp_path)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://:hunter2@cache:6379/0", "redis://:***@cache:6379/0"),
        ("rediss://app:hunter2@cache:6380", "rediss://app:***@cache:6380"),
        ("redis://cache:6379", "redis://cache:6379"),
        ("redis://:hunter2@[::1:6379", "redis://:***@[::1:6379"),  # malformed: still masked
    ],
)
def test_redacted_settings_hide_a_password_in_a_url(tmp_path, url, shown):
    settings = from_env(tmp_path, TICKGATE_REDIS_URL=url)

    redacted = settings.redacted()

    assert redacted["TICKGATE_REDIS_URL"] == shown
    assert "hunter2" not in repr(redacted)
    assert settings.redis.url == url  # the client still gets the real one


def test_kafka_source_without_bootstrap_raises_naming_the_bootstrap_key(tmp_path):
    with pytest.raises(SettingsError) as caught:
        from_env(tmp_path, TICKGATE_FEED_SOURCE="kafka")

    assert caught.value.key == "TICKGATE_KAFKA_BOOTSTRAP"


def test_kafka_source_with_bootstrap_builds(tmp_path):
    settings = from_env(
        tmp_path, TICKGATE_FEED_SOURCE="kafka", TICKGATE_KAFKA_BOOTSTRAP="127.0.0.1:9092"
    )

    assert settings.kafka.bootstrap == "127.0.0.1:9092"


def test_upstream_source_without_url_raises_naming_the_url_key(tmp_path):
    with pytest.raises(SettingsError) as caught:
        from_env(tmp_path, TICKGATE_FEED_SOURCE="upstream")

    assert caught.value.key == "TICKGATE_UPSTREAM_URL"


def test_settings_are_frozen(tmp_path):
    settings = from_env(tmp_path)

    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.port = 1  # type: ignore[misc]


def test_section_settings_are_frozen(tmp_path):
    settings = from_env(tmp_path)

    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.ws.max_inbound_bytes = 1  # type: ignore[misc]


@pytest.mark.parametrize(
    ("low_key", "high_key"),
    [
        ("TICKGATE_UPSTREAM_RECONNECT_INITIAL_MS", "TICKGATE_UPSTREAM_RECONNECT_MAX_MS"),
        ("TICKGATE_KAFKA_RETRY_BACKOFF_INITIAL_MS", "TICKGATE_KAFKA_RETRY_BACKOFF_MAX_MS"),
        (
            "TICKGATE_POSITION_CACHE_RETRY_BACKOFF_INITIAL_MS",
            "TICKGATE_POSITION_CACHE_RETRY_BACKOFF_MAX_MS",
        ),
        ("TICKGATE_REDIS_RETRY_BACKOFF_INITIAL_MS", "TICKGATE_REDIS_RETRY_BACKOFF_MAX_MS"),
    ],
)
def test_backoff_initial_above_its_maximum_raises_naming_the_key(low_key, high_key):
    environ = {low_key: "500", high_key: "200"}

    with pytest.raises(SettingsError) as raised:
        Settings.from_env(environ)

    assert raised.value.key == low_key


@pytest.mark.parametrize(("text", "minute"), [("00:00", 0), ("09:30", 570), ("23:59", 1439)])
def test_day_roll_time_reads_as_minutes_after_midnight(tmp_path, text, minute):
    settings = from_env(tmp_path, TICKGATE_PORTFOLIO_DAY_ROLL_UTC=text)

    assert settings.portfolio.day_roll_minute() == minute


@pytest.mark.parametrize("text", ["24:00", "12:60", "9:5", "noon", "", "12:00:00", "-1:30"])
def test_day_roll_time_that_is_not_hh_mm_raises_naming_the_key(tmp_path, text):
    with pytest.raises(SettingsError) as caught:
        from_env(tmp_path, TICKGATE_PORTFOLIO_DAY_ROLL_UTC=text)

    assert caught.value.key == "TICKGATE_PORTFOLIO_DAY_ROLL_UTC"


@pytest.mark.parametrize("rates", ["USD", "USD=lots", "USD=2", "=0.01"])
def test_malformed_rates_raise_naming_the_key(tmp_path, rates):
    with pytest.raises(SettingsError) as caught:
        from_env(tmp_path, TICKGATE_PORTFOLIO_RATES=rates)

    assert caught.value.key == "TICKGATE_PORTFOLIO_RATES"


@pytest.mark.parametrize(
    ("old_key", "name"),
    [
        ("TICKGATE_REDIS_FLUSH_INTERVAL_MS", "flush_interval_ms"),
        ("TICKGATE_REDIS_RETRY_BACKOFF_INITIAL_MS", "retry_backoff_initial_ms"),
        ("TICKGATE_REDIS_RETRY_BACKOFF_MAX_MS", "retry_backoff_max_ms"),
    ],
)
def test_old_redis_key_of_the_position_cache_still_sets_it(tmp_path, old_key, name):
    settings = from_env(tmp_path, **{old_key: "300"})

    assert getattr(settings.position_cache, name) == 300


def test_position_cache_key_sets_its_section_field(tmp_path):
    settings = from_env(tmp_path, TICKGATE_POSITION_CACHE_FLUSH_INTERVAL_MS="50")

    assert settings.position_cache.flush_interval_ms == 50


def test_old_and_new_name_of_a_key_together_raise_naming_the_old_one(tmp_path):
    with pytest.raises(SettingsError) as raised:
        from_env(
            tmp_path,
            TICKGATE_REDIS_FLUSH_INTERVAL_MS="50",
            TICKGATE_POSITION_CACHE_FLUSH_INTERVAL_MS="60",
        )

    assert raised.value.key == "TICKGATE_REDIS_FLUSH_INTERVAL_MS"


@pytest.mark.parametrize("raw", ["soon", "0"])
def test_invalid_value_under_an_old_name_raises_naming_the_old_key(tmp_path, raw):
    with pytest.raises(SettingsError) as raised:
        from_env(tmp_path, TICKGATE_REDIS_FLUSH_INTERVAL_MS=raw)

    assert raised.value.key == "TICKGATE_REDIS_FLUSH_INTERVAL_MS"


def test_redacted_settings_list_the_new_name_of_a_renamed_key(tmp_path):
    shown = from_env(tmp_path, TICKGATE_REDIS_FLUSH_INTERVAL_MS="75").redacted()

    assert shown["TICKGATE_POSITION_CACHE_FLUSH_INTERVAL_MS"] == 75
    assert "TICKGATE_REDIS_FLUSH_INTERVAL_MS" not in shown
