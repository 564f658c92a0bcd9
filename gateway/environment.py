"""The ``TICKGATE_*`` keys: reading a tree of settings dataclasses from them, and back.

Every field maps to one key: ``TICKGATE_<SECTION>_<FIELD>``
(``TICKGATE_WS_MAX_INBOUND_BYTES``), or ``TICKGATE_<FIELD>`` for the
top-level fields, where ``<SECTION>`` is the section class's
``env_section``. CLI flags are applied as the same keys (``overrides``), so
both paths share parsing and validation. Unknown ``TICKGATE_*`` keys and
invalid values raise ``SettingsError`` naming the key. A secret field may
instead be read from the file named by ``<KEY>_FILE``; secrets are
``Secret`` values whose repr is redacted, so they never reach a log. A key
that was renamed keeps working under its old name, listed in the root
class's ``env_aliases`` (old key to new key).
"""

from __future__ import annotations

import dataclasses
import math
import re
import types
import typing
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, Literal, TypeVar

from gateway.errors import SettingsError

__all__ = ["ENV_PREFIX", "Secret", "env_aliases", "env_keys", "from_env", "redacted"]

ENV_PREFIX: Final = "TICKGATE_"

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Secret:
    """A secret string; ``repr`` and ``str`` never show it."""

    value: str = field(repr=False)

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def reveal(self) -> str:
        """Return the secret itself, for the one place that needs it."""
        return self.value


def from_env(
    cls: type[T],
    environ: Mapping[str, str],
    overrides: Mapping[str, str] | None = None,
    defaults: Mapping[str, str] | None = None,
) -> T:
    """Build ``cls`` from ``TICKGATE_*`` keys; ``overrides`` win over ``environ``.

    ``defaults`` fill keys that neither sets. Raises ``SettingsError`` naming
    the key of an unknown or invalid setting, as the user spelt it.
    """
    values = {k: v for k, v in environ.items() if k.startswith(ENV_PREFIX)}
    values.update(overrides or {})
    given_as = _resolve_aliases(values, env_aliases(cls))
    specs = dict(_field_specs(cls))
    secret_files = {f"{key}_FILE": key for key, spec in specs.items() if spec.is_secret}
    for key in values:
        if key not in specs and key not in secret_files:
            raise SettingsError(key, "unknown setting")
    for file_key, key in secret_files.items():
        if file_key not in values:
            continue
        if key in values:
            raise SettingsError(file_key, f"cannot be set together with {key}")
        values[key] = _read_secret_file(file_key, values[file_key])
    for key, value in (defaults or {}).items():
        values.setdefault(key, value)
    try:
        return _build(cls, values, specs)
    except SettingsError as e:
        if e.key in given_as:
            raise SettingsError(given_as[e.key], e.message) from None
        raise


def redacted(settings: object) -> dict[str, object]:
    """Every effective setting by key, with secrets shown as ``***``."""
    out: dict[str, object] = {}
    for key, spec in _field_specs(type(settings)):
        value = spec.get(settings)
        if isinstance(value, Secret):
            value = "***"
        elif isinstance(value, Path):
            value = str(value)
        elif isinstance(value, str):
            value = _hide_password(value)
        out[key] = value
    return out


def env_keys(cls: type) -> list[str]:
    """Every key ``cls`` reads, in field order (without ``_FILE`` keys and aliases)."""
    return [key for key, _ in _field_specs(cls)]


def env_aliases(cls: type) -> Mapping[str, str]:
    """The old keys ``cls`` still accepts, each with the key it now sets."""
    aliases: Mapping[str, str] = getattr(cls, "env_aliases", {})
    return aliases


def _resolve_aliases(values: dict[str, str], aliases: Mapping[str, str]) -> dict[str, str]:
    # Renames old keys in place; returns new key -> the old key it was given as.
    given_as: dict[str, str] = {}
    for old, new in aliases.items():
        if old not in values:
            continue
        if new in values:
            raise SettingsError(old, f"cannot be set together with {new}, its new name")
        values[new] = values.pop(old)
        given_as[new] = old
    return given_as


_URL_PASSWORD: Final = re.compile(r"(://[^/@:\s]*:)[^/@\s]*@")


def _hide_password(value: str) -> str:
    # A URL's password (redis://user:pw@host) is shown as ***; no parsing, so
    # a malformed URL cannot fail here.
    return _URL_PASSWORD.sub(r"\1***@", value)


@dataclass(frozen=True, slots=True)
class _FieldSpec:
    section: str | None
    name: str
    annotation: object
    is_secret: bool

    def get(self, settings: object) -> object:
        holder = settings if self.section is None else getattr(settings, self.section)
        return getattr(holder, self.name)


def _env_key(section_prefix: str, name: str) -> str:
    middle = f"{section_prefix}_" if section_prefix else ""
    return f"{ENV_PREFIX}{middle}{name.upper()}"


def _field_specs(cls: type) -> Iterator[tuple[str, _FieldSpec]]:
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        annotation = hints[f.name]
        if dataclasses.is_dataclass(annotation):
            sub_hints = typing.get_type_hints(annotation)
            prefix = typing.cast(str, getattr(annotation, "env_section"))  # noqa: B009  # every section declares it
            for sub in dataclasses.fields(annotation):
                sub_annotation = sub_hints[sub.name]
                spec = _FieldSpec(f.name, sub.name, sub_annotation, _is_secret(sub_annotation))
                yield _env_key(prefix, sub.name), spec
        else:
            yield _env_key("", f.name), _FieldSpec(None, f.name, annotation, False)


def _is_secret(annotation: object) -> bool:
    return annotation is Secret or Secret in typing.get_args(annotation)


def _build(cls: type[T], values: Mapping[str, str], specs: dict[str, _FieldSpec]) -> T:
    top: dict[str, object] = {}
    sections: dict[str, dict[str, object]] = {}
    for key, raw in values.items():
        spec = specs.get(key)
        if spec is None:  # a *_FILE key, already resolved
            continue
        value = _parse(key, raw, spec.annotation)
        if spec.section is None:
            top[spec.name] = value
        else:
            sections.setdefault(spec.section, {})[spec.name] = value
    hints = typing.get_type_hints(cls)
    for section, kwargs in sections.items():
        section_cls = typing.cast(Callable[..., object], hints[section])
        try:
            top[section] = section_cls(**kwargs)
        except SettingsError as e:
            prefix = typing.cast(str, getattr(section_cls, "env_section"))  # noqa: B009
            raise SettingsError(_env_key(prefix, e.key), e.message) from None
    try:
        return cls(**top)
    except SettingsError as e:
        raise SettingsError(f"{ENV_PREFIX}{e.key.upper()}", e.message) from None


_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


def _parse(key: str, raw: str, annotation: object) -> object:
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        if raw == "":
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return _parse(key, raw, inner)
    if origin is Literal:
        if raw not in args:
            raise SettingsError(key, f"must be one of {', '.join(map(str, args))}, was {raw!r}")
        return raw
    if origin is tuple:
        return tuple(part.strip() for part in raw.split(",") if part.strip())
    if annotation is bool:
        lowered = raw.strip().lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        raise SettingsError(key, f"must be a boolean (true/false), was {raw!r}")
    if annotation is int or annotation is float:
        kind = "an integer" if annotation is int else "a finite number"
        try:
            number = typing.cast(Callable[[str], float], annotation)(raw.strip().replace("_", ""))
        except ValueError:
            raise SettingsError(key, f"must be {kind}, was {raw!r}") from None
        if not math.isfinite(number):
            raise SettingsError(key, f"must be {kind}, was {raw!r}")
        return number
    if annotation is Path:
        return Path(raw).expanduser()
    if annotation is Secret:
        return Secret(raw)
    if annotation is str:
        return raw
    raise SettingsError(key, f"has an unsupported type {annotation!r}")  # pragma: no cover


def _read_secret_file(key: str, path: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8").strip()
    except OSError as e:
        raise SettingsError(key, f"cannot read the secret file: {e.strerror}") from None
