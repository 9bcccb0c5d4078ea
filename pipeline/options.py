"""Profile options from strings: the one converter from a ``Mapping[str, str]`` (keys lower-case,
as settings pass them) to a profile's frozen options dataclass, by each field's type.

Each profile declares its options as a frozen dataclass whose fields are ``int``, ``float``,
``bool``, ``str`` or one of those or None, each documented with its unit and default. No other
pipeline code reads option strings.
"""
from __future__ import annotations

import dataclasses
import math
import types
import typing
from typing import Any, Mapping, TypeVar

from pipeline.errors import ProfileOptionsError

T = TypeVar("T")

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


def parse_options(cls: type[T], raw: Mapping[str, str]) -> T:
    """``cls`` with the fields ``raw`` names converted from their strings, the rest at their
    defaults. ProfileOptionsError for a key ``cls`` does not declare or a value it cannot take."""
    names = option_names(cls)
    unknown = sorted(set(raw) - set(names))
    if unknown:
        raise unknown_options(unknown, raw, ", ".join(names))
    hints = typing.get_type_hints(cls)
    return cls(**{key: _convert(key, value, hints[key]) for key, value in raw.items()})


def option_names(cls: type) -> list[str]:
    """The keys ``cls`` declares, sorted."""
    return sorted(f.name for f in dataclasses.fields(cls))


def unknown_options(unknown: list[str], raw: Mapping[str, str], known: str) -> ProfileOptionsError:
    """The error for keys no options class declares, listing the ``known`` ones."""
    return ProfileOptionsError(
        f"Unknown profile option{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))}; known: {known}.",
        key=unknown[0], value=raw[unknown[0]], allowed=f"a known option ({known})",
    )


def require(options: Any, key: str, ok: bool, allowed: str) -> None:
    """For an options class's ``__post_init__``: refuse ``key``'s value unless ``ok``."""
    if not ok:
        raise _bad(key, str(getattr(options, key)), allowed)


def _convert(key: str, value: str, kind: Any) -> Any:
    if typing.get_origin(kind) in (typing.Union, types.UnionType):
        kinds = [arg for arg in typing.get_args(kind) if arg is not type(None)]
        if len(kinds) != 1:
            raise TypeError(f"option {key!r} has a type parse_options does not read: {kind!r}")
        if not value.strip():
            return None
        kind = kinds[0]
    text = value.strip()
    if kind is bool:
        if text.lower() in _TRUE or text.lower() in _FALSE:
            return text.lower() in _TRUE
        raise _bad(key, value, "one of 1/0, true/false, yes/no, on/off")
    if kind is int:
        try:
            return int(text)
        except ValueError:
            raise _bad(key, value, "a whole number") from None
    if kind is float:
        try:
            number = float(text)
        except ValueError:
            raise _bad(key, value, "a number") from None
        if not math.isfinite(number):
            raise _bad(key, value, "a finite number")
        return number
    if kind is str:
        if not text:
            raise _bad(key, value, "a non-empty text")
        return value
    raise TypeError(f"option {key!r} has a type parse_options does not read: {kind!r}")


def _bad(key: str, value: str, allowed: str) -> ProfileOptionsError:
    return ProfileOptionsError(f"Bad profile option {key}={value!r}: expected {allowed}.", key=key, value=value,
                               allowed=f"expected {allowed}")
