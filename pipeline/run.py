"""One transcription, stage by stage: decode -> VAD -> ASR -> (speakers) -> punctuation -> ITN -> sentences;
ASR starts on the first spans of a VAD that hands them out as it goes (FSMN-VAD), beside it.

The engine's models do the recognising; everything between them is the same for every profile
and lives beside this module: VAD's spans as they come (:mod:`pipeline.feed`), ASR batches
(:mod:`pipeline.batching`), the ASR passes with word times on the file's timeline
(:mod:`pipeline.recognition`), speakers (:mod:`pipeline.diarize`), sentences (:mod:`pipeline.sentences`).
This module runs them in
order and reports progress. Memory holds one ASR batch of audio plus the words found so far, so
it does not grow with the file beyond those small records.
"""
from __future__ import annotations

import dataclasses
import uuid
from pathlib import Path
from typing import Callable, Sequence

from contract import Segment, Speaker, Stage, Transcript
from contract.transcript import place_words
from media import MediaInfo
from pipeline.channels import transcribe_channels
from pipeline.audio import decode
from pipeline.checkpoint import Checkpoint
from pipeline.diarize import diarize
from pipeline.errors import UnsupportedLanguageError, UnsupportedTaskError
from pipeline.feed import SpanFeed
from pipeline.recognition import recognize
from pipeline.sentences import TimedWord, cut_sentences, dominant_language, to_segment
from pipeline.stages import Engine
from pipeline.text import TRADITIONAL_CHINESE, as_written, join_words, to_traditional
from pipeline.types import Progress, TranscribeOptions

# Share of the progress bar each stage owns (ASR dominates the time).
_STAGE_SPAN = {
    Stage.DECODE: (0.0, 0.08),
    Stage.VAD: (0.08, 0.12),
    Stage.ASR: (0.12, 0.96),
    Stage.PUNC: (0.96, 0.98),
    Stage.ITN: (0.98, 1.0),
}
# With speaker labels: embedding the speech takes about a minute per audio hour on a CPU.
_DIARIZED_STAGE_SPAN = {**_STAGE_SPAN, Stage.ASR: (0.12, 0.88), Stage.DIARIZE: (0.88, 0.96)}

# Decoding less than this share of the declared duration (but enough to go on) gives a warning.
_PARTIAL_DECODE_WARN = 0.98


class _Reporter:
    """Progress through the job, never going back: once ASR runs beside VAD, VAD's own steps
    (which lie below ASR's share of the bar) are not reported."""

    def __init__(self, callback: Callable[[Progress], None] | None, spans: dict = _STAGE_SPAN):
        self._callback = callback
        self._spans = spans
        self._last = -1.0

    def __call__(self, stage: Stage, within: float) -> None:
        if self._callback is None:
            return
        lo, hi = self._spans[stage]
        fraction = round(lo + (hi - lo) * min(1.0, max(0.0, within)), 4)
        if fraction < self._last:
            return
        self._last = fraction
        self._callback(Progress(stage=stage, fraction=fraction))


def transcribe(
    path: str | Path,
    options: TranscribeOptions,
    engine: Engine,
    *,
    work_dir: Path,
    on_progress: Callable[[Progress], None] | None = None,
    max_duration_ms: int | None = None,
    ffmpeg: str | None = None,
    media_info: MediaInfo | None = None,
    checkpoint: Checkpoint | None = None,
) -> Transcript:
    """Transcribe one media file. Raises MediaError subclasses for input a person must fix.

    ``media_info``: the file's :func:`media.probe`, when the caller already has it (stored with
    the job at upload), so the file is not probed again.

    ``work_dir`` receives the decoded PCM (32 kB per second of audio) for the duration of the
    call. ``on_progress`` is called from this thread, often (per ASR batch); an exception it
    raises (e.g. the job was cancelled) stops the transcription and propagates.

    ``checkpoint`` keeps finished ASR batches (:mod:`pipeline.checkpoint`): a run over a file that
    an earlier run of the same job was interrupted in skips the batches that run finished, and
    writes the same transcript.

    ``options.channels == "separate"``: each channel on its own, merged (:mod:`pipeline.channels`).
    """
    if options.channels == "separate":
        return transcribe_channels(path, options, engine, work_dir=work_dir, on_progress=on_progress,
                                   max_duration_ms=max_duration_ms, ffmpeg=ffmpeg, media_info=media_info,
                                   checkpoint=checkpoint, transcribe_one=transcribe)
    # zh-hant / zh-tw: the models read Chinese ("zh"); the text is written in traditional characters at the end.
    script = options.language if options.language in TRADITIONAL_CHINESE else None
    if script is not None:
        options = dataclasses.replace(options, language="zh")
    _check_language(options.language, engine)
    if options.task != "transcribe" and not getattr(engine.asr, "translates", False):
        raise UnsupportedTaskError(f"The {engine.name!r} profile cannot {options.task}; the offline profile can.")
    report = _Reporter(on_progress, _DIARIZED_STAGE_SPAN if options.diarize else _STAGE_SPAN)
    # Loaded (once per engine) before any work, so that a missing model fails the job at once.
    speaker_model = engine.speaker_model() if options.diarize else None
    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    pcm_path = work_dir / f"decoded-{uuid.uuid4().hex}.s16le"
    warnings: list[str] = []
    try:
        report(Stage.DECODE, 0.0)
        info, pcm = decode(path, pcm_path, info=media_info, ffmpeg=ffmpeg, max_duration_ms=max_duration_ms,
                           on_progress=lambda f: report(Stage.DECODE, f), channel=options.channel)
        duration_ms = pcm.duration_ms
        if info.duration_ms and duration_ms < _PARTIAL_DECODE_WARN * info.duration_ms - 1000:
            warnings.append(
                f"Only {duration_ms / 1000:.1f} s of the {info.duration_ms / 1000:.1f} s the file declares "
                "could be decoded; the file may be cut short."
            )
        if options.hotwords and not engine.supports_hotwords:
            warnings.append(f"The {engine.name!r} model cannot use hotwords; they were ignored.")
        report(Stage.VAD, 0.0)
        with SpanFeed(engine.vad, pcm, lambda f: report(Stage.VAD, f), beside=engine.vad_beside_asr) as feed:
            words = recognize(pcm, feed, options, engine, lambda f: report(Stage.ASR, f), checkpoint)
        if speaker_model is not None:
            report(Stage.DIARIZE, 0.0)
            labels = diarize(pcm, feed.spans, [(w.start_ms, w.end_ms) for w in words], speaker_model, options,
                             lambda f: report(Stage.DIARIZE, f))
            for w, speaker in zip(words, labels):
                w.speaker = speaker
    finally:
        pcm_path.unlink(missing_ok=True)

    report(Stage.PUNC, 0.0)
    words = _punctuate(words, engine)
    report(Stage.PUNC, 1.0)
    sentences = cut_sentences(words)
    report(Stage.ITN, 0.0)
    if options.itn and engine.itn is None:
        warnings.append(f"The {engine.name!r} profile has no inverse text normalisation; ITN was skipped.")
    texts = [join_words(w.text for w in sentence) for _, sentence in sentences]
    # Written as people write it before ITN (which then reads tidy text) and again after it ("¥300").
    written = [as_written(text, language) for text, (language, _) in zip(texts, sentences)]
    if options.itn and engine.itn is not None and sentences:
        written = engine.itn.normalize_many([(text, language) for text, (language, _) in zip(written, sentences)])
        warnings += _itn_skipped(engine.itn, [language for language, _ in sentences])
        written = [as_written(text, language) for text, (language, _) in zip(written, sentences)]
    segments = [to_segment(sentence, text, new) for (_, sentence), text, new in zip(sentences, texts, written)]
    if script is not None:  # word by word, so that each word keeps its times
        segments = [_traditional(segment, script) if language == "zh" else segment
                    for segment, (language, _) in zip(segments, sentences)]
    report(Stage.ITN, 1.0)

    return Transcript(
        text=join_words(s.text for s in segments),
        language=dominant_language(words, options.language),
        duration_ms=duration_ms,
        segments=segments,
        warnings=warnings,
        speakers=[Speaker(sid) for sid in dict.fromkeys(seg.speaker for seg in segments)] if options.diarize else None,
    )


def _traditional(segment: Segment, script: str) -> Segment:
    """The sentence converted as a whole (OpenCC reads phrases); its words are the same places in
    the converted text, which is as long as before for (nearly) every sentence; else each word is
    converted alone and placed again."""
    text = to_traditional(segment.text, script)
    if len(text) == len(segment.text):
        words = [dataclasses.replace(w, text=text[w.start_char:w.end_char]) for w in segment.words]
    else:
        words = place_words(text, [dataclasses.replace(w, text=to_traditional(w.text, script)) for w in segment.words])
    return dataclasses.replace(segment, text=text, words=tuple(words))


def _check_language(language: str, engine: Engine) -> None:
    """Refuse, before any work, a language the engine's ASR does not transcribe."""
    if language == "auto" or engine.languages is None or language in engine.languages:
        return
    raise UnsupportedLanguageError(
        f"The {engine.name!r} profile does not transcribe language {language!r}; "
        f"use 'auto' or one of: {', '.join(engine.languages)}."
    )


def _itn_skipped(itn, languages: Sequence[str]) -> list[str]:
    """A note naming the recognised languages ITN has no grammar for (their numbers stay as spoken)."""
    covered = getattr(itn, "languages", None)
    if covered is None:
        return []
    skipped = sorted({language for language in languages if language and language not in covered})
    if not skipped:
        return []
    return [
        f"Numbers were left as spoken in the text recognised as {', '.join(repr(s) for s in skipped)}: "
        f"inverse text normalisation (writing them as digits) exists only for {', '.join(repr(c) for c in covered)}."
    ]


def _punctuate(words: list[TimedWord], engine: Engine) -> list[TimedWord]:
    """Run the profile's punctuation model over the whole text, when its ASR does not punctuate."""
    if engine.punc is None or not words:
        return words
    language = dominant_language(words, "auto")
    marks = engine.punc.punctuate([w.text for w in words], language=language)
    for w, mark in zip(words, marks):
        if mark and not w.text.endswith(mark):
            w.text += mark
    return words
