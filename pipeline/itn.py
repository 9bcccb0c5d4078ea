"""Inverse text normalisation with wetext's FST grammars (WeTextProcessing's, without pynini).

Each sentence is normalised with the grammar of its own language: the English grammar leaves
Chinese alone and the Chinese one leaves Latin words alone, but running the Chinese grammar on
English would read "one" and "two" in words; so the caller passes the sentence's language.
"""
from __future__ import annotations

import re
from typing import Sequence

from pipeline.errors import EngineMissingError

# wetext's English grammar writes "fifth." as "5th ." ; the space before the mark is undone.
_SPACE_BEFORE_MARK = re.compile(r"(?<=\S) ([.,?!;:])(?=\s|$)")


class WetextItn:
    """:class:`~pipeline.stages.ItnModel` for ``zh`` and ``en``; other languages pass unchanged."""

    languages = ("zh", "en")

    def __init__(self) -> None:
        try:
            # wetext (an extra) only when the ITN model loads: missing, it says what to install
            from wetext import Normalizer
        except ImportError as exc:
            raise EngineMissingError("ITN needs wetext: pip install 'tingxie[offline]'") from exc
        self._normalizers = {lang: Normalizer(lang=lang, operator="itn") for lang in self.languages}

    def normalize_many(self, sentences: Sequence[tuple[str, str]]) -> list[str]:
        return [self.normalize(text, language=language) for text, language in sentences]

    def normalize(self, text: str, *, language: str) -> str:
        normalizer = self._normalizers.get(language)
        if normalizer is None or not text.strip():
            return text
        normalised = normalizer.normalize(text)
        if language == "en" and not _SPACE_BEFORE_MARK.search(text):
            normalised = _SPACE_BEFORE_MARK.sub(r"\1", normalised)
        return normalised
