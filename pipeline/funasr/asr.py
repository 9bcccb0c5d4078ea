"""Paraformer-family ASR (SeACo, BiCif/timestamp, contextual, or a fine-tuned directory of the same
shape) through funasr's model classes, one batch of VAD segments per call.

The network is funasr's: its frontend, encoder, CIF predictor heads, decoders (SeACo's hotword
bias, the contextual decoder) and timestamp head. What funasr's ``inference`` does around them
per frame and per utterance in Python (the CIF loops, the timestamp peaks, a handful of tensor ops
and a device sync per utterance) tingxie does itself: the CIF scans on the CPU over one copy of the
alphas (:mod:`pipeline.funasr.cif`), the rest over one device-to-host copy per batch. The
results are funasr's, token for token and millisecond for millisecond; a model class this path
does not know runs through funasr's ``inference`` instead (``ParaformerAsr.fast_path``).

Hotwords go to the models that have a hotword encoder (SeACo, contextual) as a one-phrase-a-line
file, the form funasr reads multi-word phrases from; FunASR's Python models take no per-word
weight, so weights are accepted and not used (FunASR's C++ runtime uses them only in its WFST
decoder).
"""
from __future__ import annotations

import contextlib
import os
import re
import tempfile
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from contract import Hotword
from pipeline.stages import AsrResult, AsrWord
from pipeline.text import is_cjk, join_words

if TYPE_CHECKING:
    import numpy as np

_LATIN = re.compile(r"[A-Za-z]")


class ParaformerAsr:
    """:class:`~pipeline.stages.AsrModel` for a Paraformer-family model directory.

    device: ``cpu``, ``cuda`` or ``cuda:N``.
    fp16: run the network under float16 autocast on CUDA (ignored on CPU); default True.
    max_batch_s: a batch is split so that its padded length times its size stays under this many
        seconds of audio, bounding GPU memory whatever the pipeline's batch; default 600 s.
    """

    def __init__(self, model_dir: Path, *, device: str = "cpu", fp16: bool = True, max_batch_s: float = 600.0):
        # torch and funasr only in the worker that runs this model (web and an offline worker never load them)
        import torch
        from funasr import AutoModel

        self.model_dir = Path(model_dir)
        self._lock = threading.Lock()  # SeACo keeps the current hotword list on the model
        self._hotword_lock = threading.Lock()
        self._hotword_cache: dict[tuple[str, ...], object] = {}  # phrases -> token ids, oldest first
        model, kwargs = AutoModel.build_model(
            model=str(self.model_dir),
            device=device,
            disable_update=True,
            ncpu=max(1, torch.get_num_threads()),
            log_level="ERROR",
        )
        self._model = model
        self._tokenizer = kwargs["tokenizer"]
        self._frontend = _Float32Frontend(kwargs["frontend"])
        self._device = kwargs["device"]  # funasr falls back to cpu when CUDA is absent
        self._fp16 = fp16 and str(self._device).startswith("cuda")
        self._max_batch_samples = int(max_batch_s * 16_000)
        self.model_class = type(model).__name__
        self.supports_hotwords = hasattr(model, "generate_hotwords_list")
        self._plan = _BatchPlan.of(model)
        self.fast_path = self._plan is not None  # False: funasr's own ``inference`` runs

    @property
    def device(self) -> str:
        return str(self._device)

    def recognize(
        self,
        segments: Sequence["np.ndarray"],
        *,
        language: str,
        hotwords: Sequence[Hotword] = (),
    ) -> list[AsrResult]:
        results: list[AsrResult] = []
        phrases = _phrases(hotwords) if self.supports_hotwords else ()
        with self._lock:
            for batch in _split(segments, self._max_batch_samples):
                results.extend(self._recognize_batch(batch, phrases))
        self._release()
        return results

    def _recognize_batch(self, segments: Sequence["np.ndarray"], phrases: tuple[str, ...]) -> list[AsrResult]:
        items = self._decode(segments, phrases, funasr=not self.fast_path)
        return [_result(item, len(seg) * 1000 // 16_000) for item, seg in zip(items, segments)]

    def _decode(self, segments: Sequence["np.ndarray"], phrases: tuple[str, ...], *, funasr: bool) -> list[dict]:
        """funasr-shaped ``{"text", "timestamp"}`` per segment, by tingxie's batch path or (``funasr``)
        by the model's own ``inference``; tests and bench/funasr_asr.py compare the two."""
        # torch only in the worker that runs this model (web and an offline worker never load it)
        import torch

        data = [torch.from_numpy(s) for s in segments]
        if str(self._device).startswith("cuda") and _gpu_fbank():
            data = [d.to(self._device, non_blocking=True) for d in data]
        autocast = torch.autocast("cuda", dtype=torch.float16) if self._fp16 else contextlib.nullcontext()
        with torch.inference_mode(), autocast:
            if funasr:
                return self._decode_funasr(data, phrases)
            return self._decode_batch(data, phrases)

    def _hotword_ids(self, phrases: tuple[str, ...]):
        """The model's hotword list (token ids) for ``phrases``, made once by funasr's own
        ``generate_hotwords_list`` (its tokenisation: seg_dict, sub-words) and kept, so a job's
        batches, and later jobs with the same words, reuse it. funasr reads phrases from a file
        (a string it would split at spaces, breaking phrases), so a miss writes one briefly."""
        if not phrases:
            return None
        with self._hotword_lock:
            ids = self._hotword_cache.get(phrases)
            if ids is None:
                with _HotwordFile(phrases) as path:
                    ids = self._model.generate_hotwords_list(path, tokenizer=self._tokenizer, frontend=self._frontend)
                self._hotword_cache[phrases] = ids
                while len(self._hotword_cache) > _HOTWORD_LISTS_KEPT:
                    self._hotword_cache.pop(next(iter(self._hotword_cache)))
            return ids

    def _decode_funasr(self, data: list, phrases: tuple[str, ...]) -> list[dict]:
        """funasr's own ``inference`` (the reference, and the path of model classes tingxie does
        not batch itself); it takes hotwords only as a file name."""
        with _HotwordFile(phrases) as hotword_path:
            output = self._model.inference(
                data_in=data,
                key=[str(i) for i in range(len(data))],
                tokenizer=self._tokenizer,
                frontend=self._frontend,
                device=self._device,
                hotword=hotword_path,
                output_timestamp=True,
            )
        items = output[0] if output else []
        if len(items) != len(data):
            # funasr returns nothing at all for a batch in which the CIF fired no token anywhere.
            items = [{} for _ in data]
        return items

    def _decode_batch(self, data: list, phrases: tuple[str, ...]) -> list[dict]:
        """funasr's ``inference`` for this model class, batched: the same modules and tensor ops,
        without its per-frame and per-utterance loops of tensor ops."""
        # numpy, torch and funasr only in the worker that runs this model (importing the pipeline loads none)
        import numpy as np
        import torch
        from funasr.utils.load_utils import extract_fbank

        model, plan = self._model, self._plan
        speech, speech_lengths = extract_fbank(data, data_type="sound", frontend=self._frontend)
        del data
        speech = speech.to(device=self._device)
        speech_lengths = speech_lengths.to(device=self._device)
        hotwords = self._hotword_ids(phrases) if self.supports_hotwords else None
        encoder_out, encoder_out_lens = model.encode(speech, speech_lengths)
        if isinstance(encoder_out, tuple):
            encoder_out = encoder_out[0]
        del speech
        frames = encoder_out.size(1)
        mask = (torch.arange(frames, device=encoder_out.device)[None, :] < encoder_out_lens[:, None])[:, None, :]

        if plan.own_cif:
            predicted = _cif_v3(model.predictor, encoder_out, encoder_out_lens, mask)
            if predicted is None:
                return [{} for _ in range(len(speech_lengths))]
            embeds, token_num, lengths = predicted
        else:
            embeds, token_num = model.calc_predictor(encoder_out, encoder_out_lens)[:2]
            lengths = _to_host(token_num.round(), encoder_out_lens)
            if lengths[:, 0].max() < 1:
                return [{} for _ in range(len(speech_lengths))]
        pre_token_length = token_num.round().long()

        if plan.decoder == "seaco":
            decoder_out = model._seaco_decode_with_ASF(
                encoder_out, encoder_out_lens, embeds, pre_token_length, hw_list=hotwords
            )
        elif plan.decoder == "contextual":
            decoder_out = model.cal_decoder_with_predictor(
                encoder_out, encoder_out_lens, embeds, pre_token_length, hw_list=hotwords, clas_scale=1.0
            )[0]
        else:
            decoder_out = model.cal_decoder_with_predictor(encoder_out, encoder_out_lens, embeds, pre_token_length)[0]
        del embeds
        token_ids = decoder_out.argmax(dim=-1)
        del decoder_out

        if not plan.timestamps:
            return self._items(token_ids.cpu().numpy(), lengths, None, None)
        us_alphas = _timestamp_alphas(model.predictor, encoder_out, mask, pre_token_length)
        host = _to_host(token_ids, us_alphas)
        n_ids = token_ids.size(1)
        return self._items(host[:, :n_ids].astype(np.int64), lengths, us_alphas, host[:, n_ids:])

    def _items(self, ids: "np.ndarray", lengths: "np.ndarray", us_alphas, us_host) -> list[dict]:
        """Tokens, text and (with ``us_alphas``) token times per utterance, on the CPU.

        ``lengths``: per row, the token count and the encoder frames. ``us_alphas``: the timestamp
        head's alphas on the device (rows whose peaks do not match their tokens are rescaled there,
        as funasr rescales them), ``us_host`` their host copy.
        """
        # funasr and cif (numpy at import) only in the worker that runs this model (the pipeline's import loads neither)
        from funasr.utils.postprocess_utils import sentence_postprocess

        from pipeline.funasr import cif

        model = self._model
        dropped = {model.eos, model.sos, model.blank_id}
        tokens = []
        for row, (n_tokens, _) in zip(ids, lengths):
            token_int = [int(t) for t in row[: int(n_tokens)] if int(t) not in dropped]
            tokens.append(self._tokenizer.ids2tokens(token_int))
        if us_alphas is None:
            return [{"text": sentence_postprocess(toks)[0]} for toks in tokens]

        peaks = cif.integrate(us_host, cif.TIMESTAMP_THRESHOLD, cif.TIMESTAMP_THRESHOLD)
        timed, fires, rescale = [], [], []
        for i, (toks, (_, n_frames)) in enumerate(zip(tokens, lengths)):
            up_frames = int(n_frames) * 3  # funasr's slice: three upsampled frames per encoder frame
            timed.append(toks[:-1] if toks and toks[-1] == "</s>" else toks)
            fires.append(cif.fire_frames(peaks[i, :up_frames]))
            if toks and len(fires[i]) != len(timed[i]) + 1:
                rescale.append((i, up_frames, len(timed[i]) + 1))
        for (i, _, _), row in zip(rescale, _rescaled(us_alphas, rescale)):
            fires[i] = cif.fire_frames(
                cif.integrate(row[None, :], cif.TIMESTAMP_THRESHOLD, cif.TIMESTAMP_THRESHOLD)[0]
            )
        items = []
        for i, (toks, (_, n_frames)) in enumerate(zip(tokens, lengths)):
            times = cif.token_times_ms(fires[i], int(n_frames) * 3, timed[i]) if toks else []
            text, stamps, _ = sentence_postprocess(toks, times)
            items.append({"text": text, "timestamp": stamps})
        return items

    def _release(self) -> None:
        """Give cached GPU blocks back after each call, so a worker's footprint does not creep."""
        if str(self._device).startswith("cuda"):
            # torch only in the worker that runs this model (web and an offline worker never load it)
            import torch

            torch.cuda.empty_cache()


class _BatchPlan:
    """How tingxie's batch path runs a model class, or (``of`` returns None) that it cannot."""

    def __init__(self, own_cif: bool, decoder: str, timestamps: bool):
        self.own_cif = own_cif  # CifPredictorV3: tingxie's CIF; CifPredictorV2 is already vectorised
        self.decoder = decoder  # "seaco", "contextual" or "plain"
        self.timestamps = timestamps  # the BiCif timestamp head, as funasr's inference uses it

    @classmethod
    def of(cls, model) -> "_BatchPlan | None":
        name = type(model).__name__
        predictor = type(getattr(model, "predictor", None)).__name__
        if getattr(model, "beam_search", None) is not None:
            return None  # funasr decodes greedily unless a beam search was set up
        if name == "SeacoParaformer" and predictor in ("CifPredictorV3", "CifPredictorV2"):
            timestamps = getattr(model, "predictor_name", None) == "CifPredictorV3"
            if timestamps and predictor != "CifPredictorV3":
                return None
            return cls(predictor == "CifPredictorV3", "seaco", timestamps)
        if name == "BiCifParaformer" and predictor == "CifPredictorV3":
            return cls(True, "plain", True)
        if name == "ContextualParaformer" and predictor == "CifPredictorV2":
            return cls(False, "contextual", False)
        return None  # plain Paraformer (its timestamps differ) and anything else: funasr's inference


def _to_host(*tensors) -> "np.ndarray":
    """Tensors of one row each per utterance, side by side as float32 in one device-to-host copy
    (exact for token ids, lengths and float16/float32 values)."""
    # torch only in the worker that runs this model (web and an offline worker never load it)
    import torch

    columns = [t.float().reshape(t.size(0), -1) for t in tensors]
    return torch.cat(columns, dim=1).cpu().numpy()


def _cif_v3(predictor, encoder_out, encoder_out_lens, mask):
    """CifPredictorV3's first head and CIF, as its ``forward`` computes them at inference (no
    target length), with the fire scan on the CPU.

    Returns ``(acoustic_embeds, token_num, lengths)`` with ``lengths`` the host copy of the token
    counts and encoder lengths, or None when no row has a token.
    """
    # numpy, torch and cif (numpy at import) only in the worker that runs this model (the pipeline's import loads none)
    import numpy as np
    import torch

    from pipeline.funasr import cif

    hidden = encoder_out
    conv = torch.relu(predictor.cif_conv1d(predictor.pad(hidden.transpose(1, 2))))
    alphas = torch.sigmoid(predictor.cif_output(conv.transpose(1, 2)))
    alphas = torch.nn.functional.relu(alphas * predictor.smooth_factor - predictor.noise_threshold)
    frame_mask = mask.transpose(-1, -2).float()
    alphas = (alphas * frame_mask).squeeze(-1)
    token_num = alphas.sum(-1)
    tail = predictor.tail_threshold > 0.0
    if tail:
        hidden, alphas, token_num = predictor.tail_process_fn(hidden, alphas, token_num, mask=frame_mask.squeeze(-1))
    host = _to_host(token_num, encoder_out_lens, alphas)
    counts = host[:, 0] if tail else np.round(host[:, 0])  # the floored tail sum, or the rounded sum
    max_tokens = int(counts.max())
    if max_tokens < 1:
        return None
    _, sums = cif.plan_tokens(host[:, 2:], predictor.threshold, max_tokens)
    embeds = cif.acoustic_embeds(hidden, sums, max_tokens)
    return embeds, token_num, np.stack((counts, host[:, 1]), axis=1)


def _timestamp_alphas(predictor, encoder_out, mask, pre_token_length):
    """CifPredictorV3's upsampled timestamp head (``get_upsample_timestamp`` without its two
    CIF loops): alphas scaled to the token counts, on the device, in the network's dtype."""
    # torch only in the worker that runs this model (web and an offline worker never load it)
    import torch

    context = encoder_out.transpose(1, 2)
    if predictor.use_cif1_cnn:
        source = torch.relu(predictor.cif_conv1d(predictor.pad(context)))
    else:
        source = context
    upsampled = predictor.upsample_cnn(source).transpose(1, 2)
    if predictor.upsample_type == "cnn_blstm":
        upsampled, _ = predictor.blstm(upsampled)
    elif predictor.upsample_type == "cnn_attn":
        upsampled, _ = predictor.self_attn(upsampled, mask)
    alphas = torch.sigmoid(predictor.cif_output2(upsampled))
    alphas = torch.nn.functional.relu(alphas * predictor.smooth_factor2 - predictor.noise_threshold2)
    up_mask = mask.repeat(1, predictor.upsample_times, 1).transpose(-1, -2).reshape(alphas.shape[0], -1)
    alphas = (alphas * up_mask.unsqueeze(-1)).squeeze(-1)
    return alphas * (pre_token_length / alphas.sum(-1))[:, None]


def _rescaled(us_alphas, rows: list[tuple[int, int, int]]) -> list["np.ndarray"]:
    """funasr's fallback when a row's timestamp peaks do not number its tokens plus one: the
    row's alphas scaled to sum to that number, on the device as funasr does it (one sum and two
    divisions a row), copied back in one transfer."""
    if not rows:
        return []
    # numpy and torch only in the worker that runs this model (importing the pipeline loads neither)
    import numpy as np
    import torch

    parts = []
    for i, frames, target in rows:
        row = us_alphas[i, :frames]
        parts.append(row / (row.sum() / target))
    host = torch.cat(parts).float().cpu().numpy()
    return np.split(host, np.cumsum([frames for _, frames, _ in rows])[:-1])


def _split(segments: Sequence["np.ndarray"], max_samples: int) -> list[Sequence["np.ndarray"]]:
    """Consecutive sub-batches whose padded size (longest x count) stays under ``max_samples``."""
    batches: list[Sequence["np.ndarray"]] = []
    start = 0
    longest = 0
    for i, seg in enumerate(segments):
        longest_with = max(longest, len(seg))
        if i > start and longest_with * (i + 1 - start) > max_samples:
            batches.append(segments[start:i])
            start, longest_with = i, len(seg)
        longest = longest_with
    if start < len(segments):
        batches.append(segments[start:])
    return batches


def _result(item: dict, duration_ms: int) -> AsrResult:
    """funasr's ``{"text", "timestamp"}`` -> words with times from the segment's start."""
    text = str(item.get("text", "")).strip()
    stamps = item.get("timestamp") or []
    units = text.split() if stamps else _units(text)
    words: list[AsrWord] = []
    if stamps and len(stamps) == len(units):
        for unit, (start_ms, end_ms) in zip(units, stamps):
            start_ms = max(0, min(int(start_ms), duration_ms))
            end_ms = max(start_ms, min(int(end_ms), duration_ms))
            words.append(AsrWord(start_ms, end_ms, unit))
    elif units:
        # No (or mismatched) token times: spread the units evenly over the segment.
        step = duration_ms / len(units)
        words = [AsrWord(int(i * step), int((i + 1) * step), u) for i, u in enumerate(units)]
    language = "zh" if any(is_cjk(ch) for ch in text) or not _LATIN.search(text) else "en"
    return AsrResult(
        text=join_words(w.text for w in words),
        language=language,
        words=tuple(words),
        punctuated=False,
    )


def _units(text: str) -> list[str]:
    """Characters for CJK, whitespace-separated words otherwise (Paraformer's token units)."""
    units: list[str] = []
    for chunk in text.split():
        latin = ""
        for ch in chunk:
            if is_cjk(ch):
                if latin:
                    units.append(latin)
                    latin = ""
                units.append(ch)
            else:
                latin += ch
        if latin:
            units.append(latin)
    return units


# Hotword lists (token ids) an ASR model keeps for reuse; each is a few KB.
_HOTWORD_LISTS_KEPT = 64


def _phrases(hotwords: Sequence[Hotword]) -> tuple[str, ...]:
    return tuple(h.text.strip() for h in hotwords if h.text.strip())


class _HotwordFile:
    """Phrases as the file funasr reads (one phrase a line, ``.txt``), removed afterwards."""

    def __init__(self, phrases: tuple[str, ...]):
        self._phrases = list(phrases)
        self._path: str | None = None

    def __enter__(self) -> str | None:
        if not self._phrases:
            return None
        fd, self._path = tempfile.mkstemp(prefix="tingxie-hotwords-", suffix=".txt")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write("\n".join(self._phrases) + "\n")
        return self._path

    def __exit__(self, *exc) -> None:
        if self._path is not None:
            os.unlink(self._path)


class _Float32Frontend:
    """funasr's frontend, run with autocast off: the fbank of 16-bit-scaled samples overflows
    float16 (every feature inf, no token decoded), so only the network runs in half precision."""

    def __init__(self, frontend):
        self._frontend = frontend

    def __getattr__(self, name):
        return getattr(self._frontend, name)

    def __call__(self, *args, **kwargs):
        # torch only in the worker that runs this model (web and an offline worker never load it)
        import torch

        with torch.autocast("cuda", enabled=False):
            return self._frontend(*args, **kwargs)


def _gpu_fbank() -> bool:
    """funasr computes fbank with torchaudio when present, which runs on CUDA tensors as well;
    its kaldi-native-fbank fallback is CPU-only."""
    try:
        # torchaudio (optional beside torch) only in the worker that runs this model; without it fbank runs on the CPU
        import torchaudio.compliance.kaldi  # noqa: F401
    except ImportError:
        return False
    return True
