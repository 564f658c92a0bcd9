"""Schema objects: one definition both validates request bodies and documents them.

A ``BodySchema`` is a closed JSON object of typed fields. ``validate`` turns
a parsed body into a ``ValidatedBody`` or the ``Problem`` of the first
field that fails, checked in schema order (so the answer to a bad body is
deterministic); ``json_schema`` returns the JSON Schema (2020-12, as
OpenAPI 3.1 embeds it) of exactly what ``validate`` accepts.

Field kinds and the problem codes they raise (docs/api.md):

- ``DecimalField``: a decimal string (``orders.amounts``);
  ``decimal_not_string`` for a JSON number, ``invalid_decimal``,
  ``decimal_out_of_range``, ``wrong_type``.
- ``EnumField``: one of a fixed set of strings; ``invalid_value``, ``wrong_type``.
- ``TextField``: a string of bounded length, optionally matching a pattern;
  ``invalid_value``, ``wrong_type``.

An optional field may be absent or ``null``. The body as a whole:
``body_not_object``, ``unknown_field``, ``missing_field``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from typing import Protocol, TypeVar

from orders import problems
from orders.amounts import DECIMAL_PATTERN, DecimalTextError, parse_decimal_text
from orders.problems import Problem

__all__ = [
    "BodySchema",
    "DecimalField",
    "EnumField",
    "Field",
    "FieldValue",
    "TextField",
    "ValidatedBody",
    "pointer",
]

FieldValue = Decimal | str | None
_E = TypeVar("_E", bound=StrEnum)


def pointer(name: str) -> str:
    """Return the JSON Pointer (RFC 6901) of a top-level field."""
    return "/" + name.replace("~", "~0").replace("/", "~1")


class _Refused(Exception):
    # Internal: carries the problem of the first failing field out of the field checks.
    def __init__(self, problem: Problem) -> None:
        super().__init__(problem.detail)
        self.problem = problem


def _refuse(kind: problems.ProblemType, name: str, detail: str) -> _Refused:
    return _Refused(kind(f"{name} {detail}", field=pointer(name)))


class Field(Protocol):
    """A field of a body schema."""

    @property
    def name(self) -> str: ...

    @property
    def required(self) -> bool: ...

    def parse(self, value: object) -> FieldValue:
        """Return the field's value; raise ``_Refused`` (internal) for a bad one."""
        ...

    def json_schema(self) -> dict[str, object]: ...


def _nullable(schema: dict[str, object], required: bool) -> dict[str, object]:
    if required:
        return schema
    return {**schema, "type": [schema["type"], "null"]}


@dataclass(frozen=True, slots=True)
class DecimalField:
    """A decimal string, such as a quantity, a price or an amount."""

    name: str
    description: str
    example: str
    required: bool = True

    def parse(self, value: object) -> FieldValue:
        if isinstance(value, int | Decimal) and not isinstance(value, bool):
            raise _refuse(
                problems.DECIMAL_NOT_STRING,
                self.name,
                f"must be a decimal string such as {self.example!r}, was the number {value}",
            )
        if not isinstance(value, str):
            raise _refuse(problems.WRONG_TYPE, self.name, f"must be a string, was {_kind(value)}")
        try:
            return parse_decimal_text(value)
        except DecimalTextError as e:
            kind = problems.DECIMAL_OUT_OF_RANGE if e.is_range else problems.INVALID_DECIMAL
            raise _refuse(kind, self.name, str(e)) from e

    def json_schema(self) -> dict[str, object]:
        schema: dict[str, object] = {
            "type": "string",
            "pattern": DECIMAL_PATTERN,
            "description": self.description,
            "examples": [self.example],
        }
        return _nullable(schema, self.required)


@dataclass(frozen=True, slots=True)
class EnumField:
    """One of a fixed set of lower-case words (a ``StrEnum``'s values)."""

    name: str
    description: str
    values: tuple[str, ...]
    required: bool = True

    @classmethod
    def of(cls, name: str, description: str, kind: type[StrEnum]) -> EnumField:
        return cls(name, description, tuple(member.value for member in kind))

    def parse(self, value: object) -> FieldValue:
        if not isinstance(value, str):
            raise _refuse(problems.WRONG_TYPE, self.name, f"must be a string, was {_kind(value)}")
        if value not in self.values:
            raise _refuse(
                problems.INVALID_VALUE,
                self.name,
                f"must be one of {', '.join(self.values)}, was {value!r:.40}",
            )
        return value

    def json_schema(self) -> dict[str, object]:
        schema: dict[str, object] = {
            "type": "string",
            "enum": list(self.values),
            "description": self.description,
        }
        return _nullable(schema, self.required)


@dataclass(frozen=True, slots=True)
class TextField:
    """A string of 1 to ``max_length`` characters, optionally matching ``pattern``."""

    name: str
    description: str
    max_length: int
    pattern: str | None = None
    required: bool = True
    _compiled: re.Pattern[str] | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        compiled = None if self.pattern is None else re.compile(self.pattern)
        object.__setattr__(self, "_compiled", compiled)

    def parse(self, value: object) -> FieldValue:
        if not isinstance(value, str):
            raise _refuse(problems.WRONG_TYPE, self.name, f"must be a string, was {_kind(value)}")
        if not 1 <= len(value) <= self.max_length:
            raise _refuse(
                problems.INVALID_VALUE,
                self.name,
                f"must have 1 to {self.max_length} characters, had {len(value)}",
            )
        # search, not fullmatch: patterns are anchored, as JSON Schema applies them.
        if self._compiled is not None and self._compiled.search(value) is None:
            raise _refuse(
                problems.INVALID_VALUE,
                self.name,
                f"must match {self.pattern}, was {value!r:.40}",
            )
        return value

    def json_schema(self) -> dict[str, object]:
        schema: dict[str, object] = {
            "type": "string",
            "minLength": 1,
            "maxLength": self.max_length,
            "description": self.description,
        }
        if self.pattern is not None:
            schema["pattern"] = self.pattern
        return _nullable(schema, self.required)


def _kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | Decimal):
        return "a number"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return "a string"


@dataclass(frozen=True, slots=True)
class ValidatedBody:
    """The values of a body that passed its schema, by field name."""

    values: Mapping[str, FieldValue]

    def decimal(self, name: str) -> Decimal:
        value = self.values[name]
        assert isinstance(value, Decimal), name  # the schema parsed it as a decimal
        return value

    def optional_decimal(self, name: str) -> Decimal | None:
        value = self.values.get(name)
        assert value is None or isinstance(value, Decimal), name
        return value

    def text(self, name: str) -> str:
        value = self.values[name]
        assert isinstance(value, str), name
        return value

    def optional_text(self, name: str) -> str | None:
        value = self.values.get(name)
        assert value is None or isinstance(value, str), name
        return value

    def enum(self, name: str, kind: Callable[[str], _E]) -> _E:
        return kind(self.text(name))


@dataclass(frozen=True, slots=True)
class BodySchema:
    """A closed JSON object of fields; see the module docstring."""

    name: str
    description: str
    fields: Sequence[Field]
    example: Mapping[str, object]

    def __post_init__(self) -> None:
        names = [f.name for f in self.fields]
        if len(set(names)) != len(names):
            raise ValueError(f"{self.name} fields must be unique, were {names}")

    def validate(self, body: object) -> ValidatedBody | Problem:
        """Return the body's values, or the problem of the first failing field."""
        if not isinstance(body, dict):
            return problems.BODY_NOT_OBJECT(f"the body must be a JSON object, was {_kind(body)}")
        known = {f.name for f in self.fields}
        unknown = sorted(name for name in body if name not in known)
        if unknown:
            return problems.UNKNOWN_FIELD(
                f"{self.name} has no field {unknown[0]!r:.60}", field=pointer(unknown[0])
            )
        values: dict[str, FieldValue] = {}
        try:
            for f in self.fields:
                if f.name not in body and f.required:
                    raise _refuse(problems.MISSING_FIELD, f.name, "is required")
                if body.get(f.name) is None and not f.required:
                    values[f.name] = None
                    continue
                values[f.name] = f.parse(body[f.name])
        except _Refused as e:
            return e.problem
        return ValidatedBody(values)

    def json_schema(self) -> dict[str, object]:
        """Return the JSON Schema of the bodies ``validate`` accepts."""
        return {
            "type": "object",
            "description": self.description,
            "additionalProperties": False,
            "required": [f.name for f in self.fields if f.required],
            "properties": {f.name: f.json_schema() for f in self.fields},
            "examples": [dict(self.example)],
        }
