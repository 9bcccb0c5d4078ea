"""A hotword: a phrase to bias recognition towards, checked when it is made. The doors parse the
shapes users send into these (core.hotwords); the pipeline hands them to the ASR model."""
from __future__ import annotations

import math
import unicodedata
from dataclasses import dataclass

from contract.errors import TingxieError

# A hotword is a short phrase: names, products, terms.
MAX_HOTWORD_CHARS = 64
# FunASR's clients send weights such as 20 or 30; beyond this a weight is a mistake.
MAX_WEIGHT = 100.0


class HotwordError(TingxieError, ValueError):
    """A hotword list that cannot be used as given; the message says why."""

    code = "bad_hotwords"


@dataclass(frozen=True)
class Hotword:
    """``text``: the phrase (at most MAX_HOTWORD_CHARS printable characters, spaces collapsed);
    ``weight``: the model's boost, in (0, MAX_WEIGHT], None for the model's default."""

    text: str
    weight: float | None = None

    def __post_init__(self) -> None:
        text = " ".join(self.text.split())
        if not text:
            raise HotwordError("a hotword is empty")
        if len(text) > MAX_HOTWORD_CHARS:
            raise HotwordError(f"hotword {text[:20]!r}… is {len(text)} characters long; at most {MAX_HOTWORD_CHARS} are allowed")
        if any(unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp") for ch in text):
            raise HotwordError(f"hotword {text!r} contains control characters")
        object.__setattr__(self, "text", text)
        if self.weight is not None:
            weight = self.weight
            if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not math.isfinite(weight):
                raise HotwordError(f"hotword {text!r}: weight {weight!r} is not a finite number")
            if not 0 < weight <= MAX_WEIGHT:
                raise HotwordError(f"hotword {text!r}: weight {weight:g} is outside (0, {MAX_WEIGHT:g}]")
            object.__setattr__(self, "weight", float(weight))

    def to_json(self) -> list:
        return [self.text, self.weight]


Hotwords = tuple[Hotword, ...]
