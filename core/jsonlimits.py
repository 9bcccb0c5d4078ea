"""JSON from clients, parsed with a depth limit.

Python's parser recurses once per nesting level: a few kilobytes of ``[[[[...`` exhaust its
recursion limit (a ``RecursionError``, not a ``ValueError``, so callers answered 500), and even
below that a deep value costs every later walk over it. No request of tingxie's nests more than
a few levels, so anything deeper than :data:`MAX_DEPTH` is refused as malformed.
"""
from __future__ import annotations

import json

# Levels of arrays and objects, counting the outermost as 1.
MAX_DEPTH = 32


class TooDeepError(ValueError):
    """The JSON nests deeper than MAX_DEPTH."""


def loads(text: str | bytes, *, max_depth: int = MAX_DEPTH):
    """``json.loads``, refusing values nested deeper than ``max_depth`` (TooDeepError, a ValueError)."""
    try:
        value = json.loads(text)
    except RecursionError:
        raise TooDeepError(f"the JSON is nested deeper than {max_depth} levels") from None
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > max_depth:
            raise TooDeepError(f"the JSON is nested deeper than {max_depth} levels")
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return value
