"""The FunASR offline WebSocket protocol: what clients' frames mean and the frames tingxie answers.

Pure values and functions (no sockets, no database), so each rule the FunASR clients rely on is
tested on its own. The server loop lives in ``gateway.server``.

Client -> server, per file: a JSON config frame, binary audio frames, an end frame
(``{"is_speaking": false}``, ``+ "is_end": true`` from newer clients, or ``{"is_finished": true}``).
Server -> client, per file: one result frame (a 2pass/online pcm stream: one per piece, cut at
pauses as it arrives by ``gateway.segmenter``, ``is_final`` on the last); then, if the end frame carried
``is_end``, an acknowledgement. Modes: every mode gets the recognised text, in the frame each
client reads for its mode: ``offline`` as ``offline``; ``2pass`` (the clients' default, also
assumed when a client sends no mode) as ``2pass-offline`` frames; ``online`` as ``online``
frame (the clients append its text to what they show). Audio that looks like a stereo file's
interleaved frames sent as mono pcm is mixed down, and the result frame carries a ``warning``.

tingxie's extensions ride in the same config frame (FunASR clients never send them; FunASR's
servers ignore them): ``diarize``/``num_speakers``, and ``channels``, one key for how the audio's
channels are read. A count (1 or 2) says how many channels raw pcm interleaves, mixed down; the
REST API's words ``mix`` and ``separate`` say what to do with them, ``separate`` transcribing each
channel on its own (raw pcm: two interleaved channels, the only layout pcm carries), named by
``channel_names`` as REST names them. One key, not two, so a client that knows the REST field
sends the same thing here, and no frame can both mix and separate.
"""
from __future__ import annotations

import json
import re
import struct
import sys
from array import array
from collections import Counter
from dataclasses import dataclass, replace

from contract import HotwordError, Hotwords, Segment, TingxieError, Transcript
from core import jsonlimits
from core.hotwords import parse_hotwords
from core.options import JobOptions, parse_channel_names, speaker_fields

# Python's websockets refuses frames over 1 MiB by default; stay under with room for framing.
RESULT_FRAME_LIMIT_BYTES = 1024 * 1024 - 16 * 1024
DEFAULT_AUDIO_FS_HZ = 16000
MIN_AUDIO_FS_HZ, MAX_AUDIO_FS_HZ = 1000, 384000

# wav_format values meaning "a whole file in its own container" (ffmpeg finds out which).
MEDIA_FORMATS = frozenset({
    "others", "wav", "mp3", "mp4", "m4a", "m4v", "aac", "flac", "ogg", "oga", "opus", "webm", "weba",
    "amr", "wma", "wmv", "mkv", "mka", "avi", "mov", "3gp", "ts", "mts", "mpeg", "mpg", "mp2", "ac3",
    "aif", "aiff", "caf", "spx", "wv", "ape", "flv", "au", "gsm",
})
RAW_FORMATS = frozenset({"pcm", "raw", "s16le"})


class ProtocolError(TingxieError):
    """A client frame the protocol does not allow; answered with an error frame and a close.
    Raised with the frame's ``error_code`` first, as the FunASR clients read it."""

    def __init__(self, code: str, message: str):
        super().__init__(message, code=code)


@dataclass(frozen=True)
class FileRequest:
    """One file's parameters, from its config frame (and any later config frame before its end).

    raw_pcm: the audio is headerless signed 16-bit little-endian mono at ``audio_fs_hz``;
    otherwise it is a whole media file. ``hotwords`` None: the connection's last list applies.
    """

    wav_name: str = "demo"
    mode: str = "2pass"
    wav_format: str = "pcm"
    raw_pcm: bool = True
    audio_fs_hz: int = DEFAULT_AUDIO_FS_HZ
    itn: bool = True
    hotwords: Hotwords | None = None
    # tingxie's extension (FunASR's offline runtime has none): speaker labels, as ``spk`` in
    # ``stamp_sents`` the way FunASR's own pipeline emits them.
    diarize: bool = False
    num_speakers: int | None = None
    # tingxie's extension: raw pcm's interleaved channels (``channels``: 2 for a stereo file's frames);
    # None: told from the audio (:class:`StereoProbe`).
    channels: int | None = None
    # tingxie's extension (``"channels": "separate"``): each channel transcribed on its own, the
    # sentences merged by time and labelled with their channel; raw pcm is then two channels.
    separate_channels: bool = False
    # With separate_channels: the channels' names in order (``channel_names``, as REST takes them).
    channel_names: tuple[str, ...] = ()

    @property
    def reply_mode(self) -> str:
        return {"offline": "offline", "online": "online"}.get(self.mode, "2pass-offline")


def parse_text_frame(text: str) -> dict:
    try:
        message = jsonlimits.loads(text)
    except json.JSONDecodeError as exc:
        raise ProtocolError("bad_json", f"text frame is not JSON ({exc.msg} at position {exc.pos})") from None
    except jsonlimits.TooDeepError as exc:
        raise ProtocolError("bad_json", f"text frame is not valid: {exc}") from None
    if not isinstance(message, dict):
        raise ProtocolError("bad_json", "text frame must be a JSON object")
    return message


def _false(value) -> bool:
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value == 0
    return isinstance(value, str) and value.lower() in ("false", "0")


def is_end_frame(message: dict) -> bool:
    """``is_speaking`` false (both client generations) or the C++ server's ``is_finished``."""
    if message.get("is_speaking") is not None and _false(message["is_speaking"]):
        return True
    return message.get("is_finished") is True


def _flag(name: str, value, default: bool) -> bool:
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.lower() in ("true", "1", "false", "0"):
        return value.lower() in ("true", "1")
    raise ProtocolError("bad_config", f"{name} must be true or false, not {value!r}")


def parse_config(message: dict, base: FileRequest | None = None) -> FileRequest:
    """A config frame on top of ``base`` (a file's earlier config); unknown keys are ignored."""
    request = base or FileRequest()
    changes: dict = {}
    if "mode" in message and message["mode"] is not None:
        mode = str(message["mode"]).lower()
        if mode not in ("offline", "2pass", "online"):
            raise ProtocolError("unsupported_mode", f"unknown mode {mode!r}; use 'offline', '2pass' or 'online'")
        changes["mode"] = mode
    if message.get("wav_name") not in (None, ""):
        changes["wav_name"] = str(message["wav_name"])[:256]
    if "wav_format" in message and message["wav_format"] not in (None, ""):
        fmt = str(message["wav_format"]).lower().lstrip(".")
        if fmt in RAW_FORMATS:
            changes.update(wav_format=fmt, raw_pcm=True)
        elif fmt in MEDIA_FORMATS:
            changes.update(wav_format=fmt, raw_pcm=False)
        else:
            raise ProtocolError(
                "unknown_wav_format",
                f"unknown wav_format {fmt!r}: send 'pcm' for raw 16-bit mono samples with audio_fs, "
                "or 'others' (or the file's extension, e.g. 'mp3', 'mp4') for a whole media file",
            )
    if "audio_fs" in message and message["audio_fs"] not in (None, ""):
        try:
            fs = int(message["audio_fs"])
        except (TypeError, ValueError):
            raise ProtocolError("bad_config", f"audio_fs must be an integer in Hz, not {message['audio_fs']!r}") from None
        if not MIN_AUDIO_FS_HZ <= fs <= MAX_AUDIO_FS_HZ:
            raise ProtocolError("bad_config", f"audio_fs {fs} Hz is outside {MIN_AUDIO_FS_HZ}..{MAX_AUDIO_FS_HZ}")
        changes["audio_fs_hz"] = fs
    if message.get("channels") not in (None, ""):
        changes.update(_channels(message["channels"]))
    if "channel_names" in message:
        changes["channel_names"] = _channel_names(message["channel_names"])
    if "itn" in message:
        changes["itn"] = _flag("itn", message["itn"], True)
    if "diarize" in message:
        changes["diarize"] = _flag("diarize", message["diarize"], False)
    if message.get("num_speakers") not in (None, ""):
        value = message["num_speakers"]
        if isinstance(value, bool) or not isinstance(value, (int, str)) or not str(value).isdigit():
            raise ProtocolError("bad_config", f"num_speakers must be a whole number, not {value!r}")
        changes["num_speakers"] = int(value)
    hotwords = message.get("hotwords")
    if isinstance(hotwords, dict):
        hotwords = json.dumps(hotwords, ensure_ascii=False)
    if isinstance(hotwords, str) and hotwords.strip():
        try:
            changes["hotwords"] = parse_hotwords(hotwords)
        except HotwordError as exc:
            raise ProtocolError("bad_hotwords", str(exc)) from None
    elif hotwords not in (None, "") and not isinstance(hotwords, str):
        raise ProtocolError("bad_hotwords", "hotwords must be a string (JSON object, comma- or space-separated words)")
    request = replace(request, **changes)
    if request.separate_channels or request.channel_names:
        _check_channels(request)
    return request


def _channels(value) -> dict:
    """``channels``: a count of raw pcm's interleaved channels (mixed down), or REST's ``mix`` or
    ``separate``. Whatever a frame sends replaces what an earlier one said."""
    word = value.strip().lower() if isinstance(value, str) else None
    if word == "separate":
        return {"separate_channels": True, "channels": 2}
    if word == "mix":
        return {"separate_channels": False, "channels": None}
    if isinstance(value, bool) or str(value) not in ("1", "2"):
        raise ProtocolError("bad_config", f"channels must be 1 or 2 (interleaved 16-bit pcm, mixed down), 'mix' or "
                                          f"'separate' (each channel transcribed apart), not {value!r}")
    return {"separate_channels": False, "channels": int(value)}


def _channel_names(value) -> tuple[str, ...]:
    """``channel_names`` as REST's form sends it (``"agent,customer"``) or as a JSON list."""
    if value is None:
        return ()
    if isinstance(value, str):
        return parse_channel_names(value)
    if isinstance(value, list) and all(isinstance(name, str) for name in value):
        return tuple(name.strip() for name in value)
    raise ProtocolError("bad_channels", "channel_names must be the channels' names in order, comma-separated "
                                        "(\"agent,customer\") or a list of strings")


def _check_channels(request: FileRequest) -> None:
    """The job option's own rules (names need ``separate``, at most 8 of them, each a short printable
    label, no speaker labels beside it), checked when the frame arrives so the client hears why at once."""
    try:
        JobOptions(channels="separate" if request.separate_channels else "mix", channel_names=request.channel_names,
                   **speaker_fields(request.diarize or None, request.num_speakers))
    except TingxieError as exc:  # BadOptionError, or the contract's SpeakerOptionsError
        raise ProtocolError(exc.code, exc.message.replace("channels=separate", '"channels": "separate"')) from None


def is_wav_container(head: bytes) -> bool:
    """The html5 client sends a .wav with its header under wav_format "PCM": spot the header."""
    return len(head) >= 12 and head[:4] == b"RIFF" and head[8:12] == b"WAVE"


class StereoProbe:
    """Spots stereo sent as mono: FunASR's Python clients send a stereo .wav's frames as "pcm"
    without mixing them down. When both channels carry one signal (a mono recording saved as
    stereo, the usual case), the difference of each sample pair is tiny against their sum, while
    neighbouring samples of mono speech differ by a percent or more of their energy. When the
    channels differ, each sample is closer to the one two places back (its own channel's previous
    sample) than to its neighbour (the other channel's), while speech, whose energy lies in low
    frequencies, has neighbours closer than samples two apart.

    Fed with the first ``limit_bytes`` of raw audio as it arrives; keeps a few sums, not the audio.
    """

    RATIO = 1e-4  # difference energy / sum energy below this: equal channels
    INTERLEAVED_RATIO = 1.5  # neighbour-difference energy / lag-2-difference energy above this: two channels
    MIN_RMS = 100  # quieter than this (per summed pair) says nothing either way

    def __init__(self, limit_bytes: int = 128000):
        self.limit_bytes = limit_bytes
        self.seen_bytes = 0
        self.pairs = 0
        self.diff_energy = 0
        self.sum_energy = 0
        self.lag1_energy = 0
        self.lag2_energy = 0
        self._carry = b""

    def feed(self, chunk: bytes) -> None:
        if self.seen_bytes >= self.limit_bytes:
            return
        piece = chunk[: self.limit_bytes - self.seen_bytes]
        self.seen_bytes += len(piece)
        data = self._carry + piece
        whole = len(data) // 4 * 4
        self._carry = data[whole:]
        samples = array("h")
        samples.frombytes(data[:whole])
        if sys.byteorder == "big":
            samples.byteswap()
        diff = total = 0
        for left, right in zip(samples[0::2], samples[1::2]):
            diff += (left - right) ** 2
            total += (left + right) ** 2
        self.pairs += len(samples) // 2
        self.diff_energy += diff
        self.sum_energy += total
        self.lag1_energy += sum((a - b) ** 2 for a, b in zip(samples, samples[1:]))
        self.lag2_energy += sum((a - b) ** 2 for a, b in zip(samples, samples[2:]))

    def _loud(self) -> bool:
        return self.pairs > 0 and self.sum_energy >= self.pairs * self.MIN_RMS ** 2

    @property
    def duplicated(self) -> bool:
        """Two equal channels."""
        return self._loud() and self.diff_energy < self.RATIO * self.sum_energy

    @property
    def interleaved(self) -> bool:
        """Two channels, equal or not."""
        return self.duplicated or (self._loud() and self.lag1_energy > self.INTERLEAVED_RATIO * self.lag2_energy)


STEREO_WARNING = (
    "{wav_name}: the pcm audio looks like a stereo file's interleaved channels; it was read as "
    "stereo and mixed down to mono. Send mono 16-bit pcm, the whole file with wav_format 'wav', "
    "or \"channels\": 2 in the config frame (\"separate\" to transcribe each channel apart)"
)


def wav_header(sample_rate_hz: int, data_bytes: int, channels: int = 1) -> bytes:
    """A 44-byte PCM WAV header, so raw samples become a file ffmpeg reads (and resamples)."""
    data_bytes = min(data_bytes, 0xFFFFFFFF - 36)
    block_align = channels * 2
    return (
        b"RIFF" + struct.pack("<I", 36 + data_bytes) + b"WAVE"
        + b"fmt " + struct.pack("<IHHIIHH", 16, 1, channels, sample_rate_hz, sample_rate_hz * block_align, block_align, 16)
        + b"data" + struct.pack("<I", data_bytes)
    )


# FunASR gives one span per Chinese character and per English word, and the html5 demo walks
# the text that way (split at these marks; a run of Latin letters is one unit, anything else
# one unit per character) indexing ``timestamp`` as it goes: lay the spans out the same way so
# it never runs past the end.
_UNIT_SPLIT = re.compile(r"[。？，、?.,\s]+")
_LATIN_WORD = re.compile(r"[A-Za-z]+")


def text_units(text: str) -> list[tuple[int, int]]:
    """The units FunASR's clients count in ``text``, as ``(start, end)`` places in it."""
    units: list[tuple[int, int]] = []
    at = 0
    for gap in (*_UNIT_SPLIT.finditer(text), None):
        stop = gap.start() if gap is not None else len(text)
        if at < stop:
            if _LATIN_WORD.fullmatch(text, at, stop):
                units.append((at, stop))
            else:
                units.extend((i, i + 1) for i in range(at, stop))
        if gap is not None:
            at = gap.end()
    return units


def _even(start_ms: int, end_ms: int, count: int) -> list[list[int]]:
    """``[start_ms, end_ms]`` cut into ``count`` equal spans."""
    def at(i: int) -> int:
        return round(start_ms + (end_ms - start_ms) * i / count)

    return [[at(i), at(i + 1)] for i in range(count)]


def unit_spans(segment: Segment, units: list[tuple[int, int]]) -> list[list[int]]:
    """A span for each unit: the span of the word the unit lies in (the words' places in the text
    say which), shared evenly among that word's units. A sentence without placed words (some
    transcripts stored before version 2) spreads its tokens' spans, or its own, over the units."""
    if not units:
        return []
    words = [w for w in segment.words if w.text.strip()]
    if words and segment.placed:
        per_word: list[int] = []  # the word each unit lies in (or the next one after it)
        j = 0
        for start, _ in units:
            while j < len(words) - 1 and words[j].end_char <= start:
                j += 1
            per_word.append(j)
        counts = Counter(per_word)
        spans: list[list[int]] = []
        for j, word in enumerate(words):
            count = counts[j]
            if count:
                spans += _even(word.start_ms, word.end_ms, count)
        return spans
    source = [list(t) for t in segment.tokens] or [[segment.start_ms, segment.end_ms]]
    if len(source) == len(units):
        return source
    k, count = len(source), len(units)

    def at(x: float) -> int:
        i = min(int(x), k - 1)
        start, end = source[i]
        return round(start + (end - start) * min(x - i, 1.0))

    return [[at(i * k / count), at((i + 1) * k / count)] for i in range(count)]


def result_frame(request: FileRequest, transcript: Transcript, job_id: str | None = None,
                 warning: str | None = None, offset_ms: int = 0) -> dict:
    """The one result frame for a recognised file, from the stored transcript; ``offset_ms``
    shifts every time by where the piece starts in its stream (a 2pass stream cut at pauses).

    ``job_id`` and ``warning`` (keys FunASR clients ignore) name the tingxie job, for the REST API,
    and what the gateway had to guess about the audio; so do a sentence's ``channel`` and
    ``channel_name``, when the job kept the channels apart. The warning rides in the result frame: an
    extra frame before it would end an older client's wait for its result. ``offset_ms``: where the
    audio starts in the client's stream (a piece of a 2pass/online stream), added to every time."""
    timestamp: list[list[int]] = []
    stamp_sents = []
    speaker_index = {s.id: i for i, s in enumerate(transcript.speakers or ())}
    speaker_name = {s.id: s.name for s in transcript.speakers or () if s.name}
    for segment in transcript.segments:
        units = text_units(segment.text)
        spans = [[a + offset_ms, b + offset_ms] for a, b in unit_spans(segment, units)]
        timestamp.extend(spans)
        sentence = {
            "text_seg": " ".join(segment.text[a:b] for a, b in units),
            "punc": segment.punc,
            "start": segment.start_ms + offset_ms,
            "end": segment.end_ms + offset_ms,
            "ts_list": spans,
        }
        if segment.speaker in speaker_index:
            sentence["spk"] = speaker_index[segment.speaker]  # FunASR's spk: 0, 1, ... in order of speech
        if segment.channel is not None:
            sentence["channel"] = segment.channel
            if segment.speaker in speaker_name:  # the channel's speaker, named from channel_names
                sentence["channel_name"] = speaker_name[segment.speaker]
        stamp_sents.append(sentence)
    return {
        "mode": request.reply_mode,
        "wav_name": request.wav_name,
        "text": transcript.text,
        "is_final": True,
        "timestamp": json.dumps(timestamp, separators=(",", ":")),
        "stamp_sents": stamp_sents,
        "job_id": job_id,
        **({"warning": warning} if warning else {}),
    }


def empty_result_frame(request: FileRequest) -> dict:
    """The closing frame of a stream whose audio was all answered in earlier pieces."""
    return {"mode": request.reply_mode, "wav_name": request.wav_name, "text": "", "is_final": True,
            "timestamp": "[]", "stamp_sents": []}


def ack_frame(request: FileRequest) -> dict:
    return {"mode": request.reply_mode, "wav_name": request.wav_name, "is_end": True, "is_final": True}


def error_frame(request: FileRequest | None, code: str, message: str, job_id: str | None = None) -> dict:
    """A failed file or a refused connection: ``text`` is present (older clients index it), and
    ``is_end``/``is_final: false`` tells the newest client the file failed and why."""
    request = request or FileRequest()
    return {
        "mode": request.reply_mode,
        "wav_name": request.wav_name,
        "text": "",
        "is_end": True,
        "is_final": False,
        "error": message,
        "error_code": code,
        "job_id": job_id,
    }


def encode(frame: dict, limit_bytes: int = RESULT_FRAME_LIMIT_BYTES) -> str:
    """JSON text under ``limit_bytes``: a very long file drops per-token spans first, then the
    sentence list, then the timestamps; ``text`` is cut only as a last resort."""
    def dump(value: dict) -> str:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))

    text = dump(frame)
    if len(text.encode()) <= limit_bytes:
        return text
    frame = dict(frame, truncated=True)
    if frame.get("stamp_sents"):
        frame["stamp_sents"] = [dict(s, ts_list=[]) for s in frame["stamp_sents"]]
        text = dump(frame)
        if len(text.encode()) <= limit_bytes:
            return text
        frame["stamp_sents"] = []
        text = dump(frame)
        if len(text.encode()) <= limit_bytes:
            return text
    if "timestamp" in frame:
        frame["timestamp"] = "[]"
        text = dump(frame)
        if len(text.encode()) <= limit_bytes:
            return text
    body = frame.get("text", "")
    overhead = len(dump(dict(frame, text="")).encode())
    budget = max(0, limit_bytes - overhead - 16)
    while True:
        frame["text"] = body.encode()[:budget].decode(errors="ignore")
        text = dump(frame)
        if len(text.encode()) <= limit_bytes:
            return text
        if budget == 0:
            return text
        budget = max(0, budget - max(1024, (len(text.encode()) - limit_bytes) * 2))
