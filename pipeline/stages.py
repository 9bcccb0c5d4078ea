"""The stage seams a model profile fills: VAD, ASR, punctuation, ITN, speaker embeddings.

A profile (see :mod:`pipeline.profiles`) declares a :class:`Profile`, whose loader turns an
:class:`EngineConfig` into an :class:`Engine` holding one object per stage; :func:`pipeline.transcribe` drives them in order and owns everything between them
(decoding, batching, timestamps on the file's timeline, sentences, progress). Stage objects
hold loaded models, so they are built once per process and reused across jobs; they must not
keep per-job state.

Only typing lives here: importing this module loads neither numpy nor any model runtime.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Generic, Iterator, Protocol, Sequence, TypeVar, runtime_checkable

from contract import Hotword
from pipeline.errors import EngineMissingError

if TYPE_CHECKING:
    import numpy as np

    from pipeline.audio import PcmFile


@dataclass(frozen=True)
class SpeechSpan:
    """A stretch of speech found by VAD, in ms on the file's timeline; ``end_ms`` is exclusive.

    ``parts``: the speech regions a VAD merged into this span (``(start_ms, end_ms)`` pairs,
    pauses between them), when it merges; the pipeline re-reads a part that came back without
    words (Whisper can skip the part of a window that is in another language).

    ``cuts``: stretches of long pauses between parts (``(start_ms, end_ms)``, in order) that ASR
    does not read: it reads the span's audio with them left out (:meth:`reads`), so a 30 s window
    holds more speech, and its times come back to the file's timeline through :meth:`file_ms`.
    """

    start_ms: int
    end_ms: int
    parts: tuple[tuple[int, int], ...] = field(default=(), compare=False)
    cuts: tuple[tuple[int, int], ...] = field(default=(), compare=False)

    @property
    def duration_ms(self) -> int:
        return self.end_ms - self.start_ms

    @property
    def read_ms(self) -> int:
        """How much audio ASR reads: the span less its cuts."""
        return self.duration_ms - sum(end - start for start, end in self.cuts)

    def reads(self) -> list[tuple[int, int]]:
        """The stretches of the file ASR reads, in order, joined end to end: the span less its cuts."""
        stretches, at = [], self.start_ms
        for start, end in self.cuts:
            stretches.append((at, start))
            at = end
        stretches.append((at, self.end_ms))
        return [(start, end) for start, end in stretches if end > start]

    def file_ms(self, read_ms: int, *, ending: bool = False) -> int:
        """A time in the audio ASR read (ms from its start) on the file's timeline. A time that
        falls on a cut lies after the cut (a word's start) or, with ``ending``, before it."""
        at = self.start_ms + read_ms
        for start, end in self.cuts:
            if at < start or (ending and at == start):
                break
            at += end - start
        return at

    def within(self, start_ms: int, end_ms: int) -> "SpeechSpan":
        """The part of this span from ``start_ms`` to ``end_ms`` (on a part's bounds): its parts and
        cuts there."""
        return SpeechSpan(
            start_ms, end_ms,
            tuple(p for p in self.parts if start_ms <= p[0] and p[1] <= end_ms),
            tuple(c for c in self.cuts if start_ms <= c[0] and c[1] <= end_ms),
        )


@runtime_checkable
class VadModel(Protocol):
    """Finds speech in a decoded file.

    Implementations read the :class:`~pipeline.audio.PcmFile` in chunks (``pcm.read(start_ms,
    end_ms)``) so memory stays bounded whatever the file's length, and return spans already
    shaped for their ASR model: padded, merged across short silences, and split so that no span
    is longer than the ASR model takes at once (30 s for Whisper).
    """

    def speech_spans(
        self, pcm: "PcmFile", on_progress: Callable[[float], None] | None = None
    ) -> list[SpeechSpan]:
        """Speech spans in time order, not overlapping. ``on_progress`` gets 0..1 through the file."""
        ...


@runtime_checkable
class StreamingVad(Protocol):
    """A :class:`VadModel` that also hands out each span as soon as it is closed, so ASR can
    start on the first spans while the rest of the file is still being read."""

    def iter_speech_spans(
        self,
        pcm: "PcmFile",
        on_progress: Callable[[float], None] | None = None,
        stop: "threading.Event | None" = None,
    ) -> Iterator[SpeechSpan]:
        """What :meth:`VadModel.speech_spans` returns, one span at a time. The pipeline runs it in
        a thread of its own (``on_progress`` is called from that thread) and sets ``stop`` when
        the job ends early: the iteration then ends within a moment, without reading further."""
        ...


@dataclass(frozen=True)
class AsrWord:
    """A recognised word (a character or token for Chinese), times in ms from its segment's start.

    ``text`` carries no surrounding whitespace; the pipeline joins words (with a space between
    two Latin words, none around CJK). Trailing punctuation the model wrote may stay attached
    (``"you,"``) when :attr:`AsrResult.punctuated` is true.
    """

    start_ms: int
    end_ms: int
    text: str


@dataclass(frozen=True)
class AsrResult:
    """What the ASR stage says about one segment.

    ``language`` is ``"zh"`` or ``"en"`` (or another ISO code the model detected).
    ``punctuated`` is true when the model writes its own punctuation (Whisper), in which case no
    punctuation model runs over it.
    """

    text: str
    language: str
    words: tuple[AsrWord, ...]
    punctuated: bool


@runtime_checkable
class AsrModel(Protocol):
    """Recognises batches of speech segments.

    ``supports_hotwords``: whether ``hotwords`` change anything; when false the pipeline adds a
    warning to the transcript instead of passing them silently. A model that can also translate
    (Whisper) has ``translates`` true and takes ``task="translate"`` (English words) in
    :meth:`recognize`; the pipeline passes ``task`` only then.
    """

    supports_hotwords: bool

    def recognize(
        self,
        segments: Sequence["np.ndarray"],
        *,
        language: str,
        hotwords: Sequence[Hotword] = (),
    ) -> list[AsrResult]:
        """One result per segment, in order.

        ``segments`` are float32 mono arrays at 16 kHz in [-1, 1], each at most as long as the VAD
        made them. ``language`` is ``"auto"`` or one of the engine's ``languages``.
        """
        ...


@runtime_checkable
class PuncModel(Protocol):
    """Punctuates unpunctuated text, over the whole transcript so sentences can cross segments."""

    def punctuate(self, tokens: Sequence[str], *, language: str) -> list[str]:
        """For each token, the punctuation mark to write after it (``""`` for none).

        Sentence-final marks (``。？！.?!``) are where the pipeline cuts sentences.
        """
        ...


@runtime_checkable
class ItnModel(Protocol):
    """Inverse text normalisation: spoken forms to written ones ("一百二十三" -> "123")."""

    def normalize(self, text: str, *, language: str) -> str:
        """``text`` is one sentence; ``language`` its ISO code (one without a grammar passes unchanged)."""
        ...

    def normalize_many(self, sentences: Sequence[tuple[str, str]]) -> list[str]:
        """``normalize`` over ``(text, language)`` pairs: a job's sentences in one call, which a
        GPU worker sends to its CPU helpers rather than running them under its own GIL."""
        ...


@runtime_checkable
class SpeakerModel(Protocol):
    """Speaker embeddings of short stretches of speech, for diarization (:mod:`pipeline.diarize`).

    ``window_ms``: how much audio one embedding is best computed over; the diarizer cuts speech
    into windows this long, overlapping by half. ``same_speaker_distance``: the cosine distance
    under which two groups of windows are one voice when the number of speakers is not given (a
    property of the model's embedding space, measured on real voices).
    """

    window_ms: int
    same_speaker_distance: float

    def embed(self, clips: Sequence["np.ndarray"]) -> "np.ndarray":
        """One L2-normalised float32 row per clip. ``clips`` are float32 mono arrays at 16 kHz in
        [-1, 1], each at most ``window_ms`` long (shorter ones at the ends of speech)."""
        ...


ModelT = TypeVar("ModelT")


class LazyModel(Generic[ModelT]):
    """A model built by ``load`` on first use and kept: an engine holds one for a model that only
    some jobs need (the speaker model), so a process whose jobs never ask never loads it. Safe
    to share between threads, and between copies of an engine (they share the one model)."""

    def __init__(self, load: Callable[[], ModelT]):
        self._load = load
        self._model: ModelT | None = None
        self._lock = threading.Lock()

    @property
    def loaded(self) -> bool:
        return self._model is not None

    def get(self) -> ModelT:
        """The model, loading it on the first call (the loader's errors propagate, and the next
        call tries again)."""
        with self._lock:
            if self._model is None:
                self._model = self._load()
            return self._model


@dataclass(frozen=True)
class EngineIdentity:
    """What a loaded model set is, beyond the code that runs it: its profile, the profile's options
    (model files, beam size: an instance of :attr:`Profile.options`) and the device it runs on.
    A resumed job reuses a batch's words only from an engine with the same identity."""

    profile: str
    options: Any
    device: str


@dataclass
class Engine:
    """One loaded model set. Build it once per process (the worker caches it) and reuse it.

    Batches hold at most ``batch_seconds`` of audio. ``punc`` is None when the ASR model punctuates itself; ``itn`` None when the profile has none
    (then ``TranscribeOptions.itn`` is a no-op with a warning). ``languages``: the codes a job may
    ask for besides ``auto`` (a job asking for another fails with ``unsupported_language``); None
    takes any. ``speaker`` holds the speaker-embedding model, loaded on the first diarized job
    (:meth:`speaker_model`); None when the profile cannot diarize. ``identity``: set by
    :func:`pipeline.profiles.load_engine` (None for an engine assembled by hand).
    """

    name: str
    vad: VadModel
    asr: AsrModel
    punc: PuncModel | None = None
    itn: ItnModel | None = None
    batch_seconds: float = 240.0
    # Every segment costs at least this much of the batch budget: Whisper pads each input to a
    # 30 s window, so memory and time go by windows, not by seconds of speech. 0: by seconds.
    asr_window_ms: int = 0
    languages: tuple[str, ...] | None = None
    speaker: LazyModel[SpeakerModel] | None = None
    identity: EngineIdentity | None = None
    # A streaming VAD reads the file in a thread beside ASR; False where ASR alone keeps every core
    # busy (CTranslate2 on a small CPU host), so VAD reads the whole file first.
    vad_beside_asr: bool = True

    @property
    def supports_hotwords(self) -> bool:
        return bool(self.asr.supports_hotwords)

    def speaker_model(self) -> SpeakerModel:
        """The speaker-embedding model, loaded on the first call and kept with the engine. Raises
        EngineMissingError (the profile has none, or its package is not installed) or
        ModelNotReadyError (its files are missing)."""
        if self.speaker is None:
            raise EngineMissingError(f"The {self.name!r} profile has no speaker model: it cannot diarize.")
        return self.speaker.get()

@dataclass(frozen=True)
class EngineConfig:
    """Where a profile finds its files and how it runs.

    model_dir: downloaded models (FunASR's ``--download-model-dir``).
    cache_dir: files a profile derives once (the joined Whisper weights).
    device: ``cpu``, ``cuda`` or ``cuda:N``.
    batch_seconds: an ASR batch holds at most this many seconds of audio in total (default 240 s).
    options: the profile's own options, an instance of its :attr:`Profile.options` (for example
    ``FunasrOptions(asr="/models/my-paraformer")``); None: its defaults. From strings (settings):
    :func:`pipeline.profiles.split_profile_options`.
    """

    model_dir: Path
    cache_dir: Path
    device: str = "cpu"
    batch_seconds: float = 240.0
    options: Any = None


@dataclass(frozen=True)
class Profile:
    """What a profile module declares (as ``PROFILE``): its options, a frozen dataclass whose fields
    :func:`pipeline.options.parse_options` reads from strings, and how to load its engine. The
    module imports nothing heavy itself; ``load`` imports the model runtimes it needs and gets an
    :class:`EngineConfig` whose ``options`` is an ``options`` instance."""

    options: type
    load: Callable[[EngineConfig], Engine]
