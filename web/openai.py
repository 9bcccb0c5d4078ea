"""The OpenAI-compatible audio API: ``POST /v1/audio/transcriptions``, ``POST /v1/audio/translations``
and ``GET /v1/models``.

Each call is an ordinary tingxie job (source ``openai``), made through the one submission path
and visible in the native API and on the page. The answer waits for the job, up to
``TINGXIE_OPENAI_WAIT_S``, on the event loop and the process's event hub, holding no request
thread (:mod:`web.waits`); past that the caller gets a 504 whose body and ``Location`` name the
job, with ``x-should-retry: false`` so the OpenAI SDK does not upload the file again, and polls
the native API. With ``stream=true`` the answer is OpenAI's server-sent events: a
``transcript.text.delta`` per sentence once the transcript is written, then
``transcript.text.done``. Errors use OpenAI's shape and statuses (see web.errors).

Models (:data:`MODELS`): OpenAI's transcription models run on the deployment's default profile
(``gpt-4o-transcribe-diarize`` with speaker labels); every profile is also a model of its own
name (``offline``, ``funasr``). Only models a live worker serves are listed; a model whose
profile no worker has served for ``TINGXIE_NO_WORKER_S`` is refused at once (503 ``no_worker``).
"""
from __future__ import annotations

import json
import time
import unicodedata
from dataclasses import dataclass
from functools import partial

from apiflask import APIBlueprint, Schema
from apiflask.fields import Boolean, File, Float, Integer, List, Nested, String
from apiflask.validators import Length, OneOf, Range
from flask import Response, current_app, jsonify
from marshmallow import RAISE, ValidationError, post_load, validates_schema

import contract
from core import export, jobs, workers
from core.db import session_scope
from core.errors import NotFoundError, TingxieError
from core.hotwords import MAX_HOTWORDS_BYTES, parse_hotwords
from core.models import Job, Transcript
from core.options import TRANSLATING_PROFILES, JobOptions, Source, parse_channel_names, speaker_fields
from core.services import Services
from core.settings import PROFILES
from core.submit import submit_job
from web import auth, waits
from web.errors import error_response
from web.schemas import SOURCE_URL, SPEAKER_FIELDS, Out, errors, media_of, ok, ref

bp = APIBlueprint("openai", __name__, tag={
    "name": "OpenAI", "description": "the OpenAI audio API: every call is an ordinary tingxie job"})


@dataclass(frozen=True)
class Model:
    """What an OpenAI model name runs as: a profile (None: the deployment's default) and whether
    it labels speakers."""

    profile: str | None = None
    diarize: bool = False


# OpenAI's transcription models of today (the SDK's AudioModel), then tingxie's profiles.
MODELS: dict[str, Model] = {
    "gpt-4o-transcribe": Model(),
    "gpt-4o-mini-transcribe": Model(),
    "gpt-4o-mini-transcribe-2025-12-15": Model(),
    "gpt-transcribe": Model(),
    "gpt-4o-transcribe-diarize": Model(diarize=True),
    "whisper-1": Model(),
    **{profile: Model(profile) for profile in PROFILES},
}
DEFAULT_MODEL = "whisper-1"
RESPONSE_FORMATS = ("json", "text", "srt", "verbose_json", "vtt", "diarized_json")
STREAM_FORMATS = ("json", "text", "diarized_json")
_CREATED = 1_764_460_800  # the models' "created" stamp: tingxie 0.1 (2025-11-30)
_LANGUAGE_NAMES = {"zh": "chinese", "en": "english"}
# OpenAI's fields tingxie cannot honour, refused with what to do instead.
_REFUSED = {
    "include[]": "tingxie has no log probabilities (include[]=logprobs); leave include out",
    "known_speaker_names[]": "tingxie does not match voices to known speakers; name its speakers after the job "
                             "(PATCH /api/v1/jobs/<id>/speakers)",
    "known_speaker_references[]": "tingxie does not match voices to known speakers; name its speakers after "
                                  "the job (PATCH /api/v1/jobs/<id>/speakers)",
}


def services() -> Services:
    return current_app.extensions["tingxie"]


def model_of(name: str) -> Model:
    """The model a name runs as; unknown_model (404, as OpenAI's model_not_found) otherwise."""
    model = MODELS.get(name)
    if model is None:
        raise TingxieError(f"the model {name!r} does not exist here; GET /v1/models lists the models this "
                           f"deployment serves (of {', '.join(MODELS)})", code="unknown_model")
    return model


def profile_of(model: Model) -> str:
    return model.profile or services().settings.profile


def served_models() -> list[str]:
    """The model names a live worker serves now (core.workers)."""
    served = current_app.extensions["tingxie.served"].get()
    return [name for name, model in MODELS.items() if served.get(profile_of(model))]


def unserved(profile: str) -> str | None:
    """Why a call for ``profile`` is refused at once: no worker has served it for
    TINGXIE_NO_WORKER_S (its job would only wait, then fail no_worker); None when it is served. A
    web tier up for less than that gives its workers time to start."""
    svc = services()
    within_s = svc.settings.no_worker_s
    if current_app.extensions["tingxie.served"].get().get(profile):
        return None
    if time.monotonic() - current_app.extensions["tingxie.started"] < within_s:
        return None
    with session_scope(svc.db) as session:
        if profile in workers.served_within(session, within_s):
            return None
    return workers.no_worker_message(profile, within_s)


class OpenAIErrorBody(Out):
    message = String(required=True)
    type = String(required=True)
    param = String(required=True, allow_none=True)
    code = String(required=True, allow_none=True)


class OpenAIError(Out):
    error = Nested(OpenAIErrorBody, required=True)


def _refuse(field: str, message: str) -> None:
    raise ValidationError(message, field_name=field)


class _AudioForm(Schema):
    """The fields both audio routes take; any other field is refused with a 400 naming it."""

    class Meta:
        unknown = RAISE

    error_messages = {"unknown": "tingxie does not take this field (the OpenAI fields it honours and tingxie's "
                                 "own are in the API docs at /api/v1/docs)"}

    file = File(metadata={"description": "the audio; or send tingxie's `source_url`"})
    source_url = SOURCE_URL
    model = String(required=True, metadata={"description": "an OpenAI transcription model or a profile name "
                                                           "(README: OpenAI-compatible API)",
                                            "examples": list(MODELS)})
    prompt = String(validate=Length(max=MAX_HOTWORDS_BYTES),
                    metadata={"description": "words or phrases to favour, read as hotwords (comma- or space-separated, "
                                             "or one `word weight` a line); Whisper sees them as its prompt"})
    temperature = Float(validate=Range(min=0, max=1), metadata={"description": "accepted; decoding is deterministic"})
    hotwords = String(validate=Length(max=MAX_HOTWORDS_BYTES), metadata={"description": "tingxie: hotwords, as the native API"})
    itn = Boolean(metadata={"description": "tingxie: write numbers as digits (default true)"})

    def options(self, data: dict, model: Model, **fields) -> JobOptions:
        text = "\n".join(t for t in (data.get("prompt"), data.get("hotwords"), *data.get("keywords", ())) if t)
        fields.update(profile=profile_of(model), hotwords=parse_hotwords(text), source=Source.OPENAI)
        if "itn" in data:
            fields["itn"] = data["itn"]
        return JobOptions(**fields)


class TranscriptionForm(_AudioForm):
    """OpenAI's fields, plus tingxie's ``hotwords``, ``itn`` and speaker fields (send them with the
    SDK's ``extra_body``)."""

    language = String(validate=Length(min=2, max=16), metadata={"description": "ISO-639-1 code; default: detected"})
    languages = List(String(validate=Length(min=2, max=16)), data_key="languages[]",
                     metadata={"description": "one ISO-639-1 code, as `language`"})
    keywords = List(String(validate=Length(max=MAX_HOTWORDS_BYTES)), data_key="keywords[]",
                    metadata={"description": "words or phrases to favour: tingxie's hotwords"})
    response_format = String(load_default="json", validate=OneOf(RESPONSE_FORMATS))
    stream = Boolean(load_default=False, metadata={"description": "server-sent events: a `transcript.text.delta` per "
                                                                  "sentence, then `transcript.text.done`"})
    chunking_strategy = String(validate=OneOf(["auto"], error="tingxie always cuts the audio with its own voice "
                                                                "activity detection: send `auto` or nothing"),
                               metadata={"description": "`auto` (what tingxie always does)"})
    timestamp_granularities = List(String(validate=OneOf(["word", "segment"])), data_key="timestamp_granularities[]",
                                   load_default=list, metadata={"description": "with verbose_json: `segment` (default), "
                                                                               "`word`, or both"})
    include = List(String(), data_key="include[]", metadata={"description": "refused: tingxie has no log probabilities"})
    known_speaker_names = List(String(), data_key="known_speaker_names[]", metadata={"description": "refused"})
    known_speaker_references = List(String(), data_key="known_speaker_references[]",
                                    metadata={"description": "refused"})
    diarize = Boolean(metadata={"description": "tingxie: label speakers (verbose_json gets `speaker` on segments "
                                               "and words and a `speakers` list)"})
    num_speakers = Integer(metadata={"description": "tingxie: how many speakers, when known"})
    min_speakers = Integer(metadata={"description": "tingxie: at least this many speakers"})
    max_speakers = Integer(metadata={"description": "tingxie: at most this many speakers"})
    channels = String(metadata={"description": "tingxie: `separate` transcribes each channel on its own (segments get "
                                               "`channel` and its speaker); default `mix`"})
    channel_names = String(validate=Length(max=1024),
                           metadata={"description": "tingxie: the channels' names, comma-separated (`agent,customer`)"})

    @validates_schema
    def _check(self, data: dict, **_) -> None:
        for field, message in _REFUSED.items():
            if data.get(field.removesuffix("[]")):
                _refuse(field, message)
        if len(data.get("languages") or ()) > 1:
            _refuse("languages[]", "tingxie takes one language (or none: detected per sentence)")
        if data.get("stream") and data["response_format"] not in STREAM_FORMATS:
            _refuse("stream", f"a stream is of {', '.join(STREAM_FORMATS)}; "
                              f"{data['response_format']} comes as one answer (leave stream out)")

    @post_load
    def to_request(self, data: dict, **_) -> dict:
        model = model_of(data["model"])
        fields = speaker_fields(*(data.get(name) for name in SPEAKER_FIELDS))
        if model.diarize and fields.get("diarize") is not False:
            fields["diarize"] = True
        if data["response_format"] == "diarized_json" and not fields.get("diarize"):
            raise ValidationError("diarized_json labels speakers: use model gpt-4o-transcribe-diarize (or send "
                                  "diarize=true)", field_name="response_format")
        language = data.get("language") or next(iter(data.get("languages") or ()), None)
        if language:
            fields["language"] = language
        fields.update({name: data[name] for name in ("channels",) if name in data})
        if "channel_names" in data:
            fields["channel_names"] = parse_channel_names(data["channel_names"])
        return {"media": media_of(data.get("file"), data.get("source_url")), "options": self.options(data, model, **fields),
                "format": data["response_format"], "stream": data["stream"],
                "granularities": set(data["timestamp_granularities"]) or {"segment"}}


class TranslationForm(_AudioForm):
    """OpenAI's fields: speech in any language to English text, by Whisper's translate task (on
    the offline profile)."""

    response_format = String(load_default="json", validate=OneOf(RESPONSE_FORMATS[:-1]))

    @post_load
    def to_request(self, data: dict, **_) -> dict:
        model = model_of(data["model"])
        return {"media": media_of(data.get("file"), data.get("source_url")),
                "options": self.options(data, model, task="translate"),
                "format": data["response_format"], "stream": False, "granularities": {"segment"}}


class ModelOut(Out):
    id = String(required=True)
    object = String(required=True)
    created = Integer(required=True)
    owned_by = String(required=True)


class ModelList(Out):
    object = String(required=True)
    data = List(Nested(ModelOut), required=True)


class Usage(Out):
    type = String(required=True, metadata={"description": "`duration`"})
    seconds = Float(required=True, metadata={"description": "seconds of audio"})


class TranscriptionJson(Out):
    text = String(required=True)
    usage = Nested(Usage)


class VerboseSegment(Out):
    speaker = String(metadata={"description": "tingxie: the speaker (its name when given), when diarized"})
    channel = Integer(metadata={"description": "tingxie: the channel it was heard on, with channels=separate"})
    id = Integer(required=True)
    seek = Integer(required=True)
    start = Float(required=True, metadata={"description": "seconds"})
    end = Float(required=True, metadata={"description": "seconds"})
    text = String(required=True)
    tokens = List(Integer(), required=True)
    temperature = Float(required=True)


class VerboseWord(Out):
    speaker = String(metadata={"description": "tingxie: the speaker (its name when given), when diarized"})
    word = String(required=True, metadata={"description": "the word without punctuation"})
    start = Float(required=True, metadata={"description": "seconds"})
    end = Float(required=True, metadata={"description": "seconds"})


class VerboseTranscription(Out):
    task = String(required=True, metadata={"description": "`transcribe` or `translate`"})
    language = String(required=True, metadata={"description": "the language's English name, as OpenAI gives it"})
    duration = Float(required=True, metadata={"description": "seconds"})
    text = String(required=True)
    segments = List(Nested(VerboseSegment))
    words = List(Nested(VerboseWord))
    usage = Nested(Usage)


class DiarizedSegment(Out):
    type = String(required=True, metadata={"description": "`transcript.text.segment`"})
    id = String(required=True)
    start = Float(required=True, metadata={"description": "seconds"})
    end = Float(required=True, metadata={"description": "seconds"})
    text = String(required=True)
    speaker = String(required=True, metadata={"description": "the speaker's name when given, else its id (S1, S2...)"})


class DiarizedTranscription(Out):
    task = String(required=True)
    duration = Float(required=True, metadata={"description": "seconds"})
    text = String(required=True)
    segments = List(Nested(DiarizedSegment), required=True)
    usage = Nested(Usage)


# Referenced by name from the hand-written response objects below.
COMPONENTS = {schema.__name__: schema for schema in (OpenAIError, TranscriptionJson, VerboseTranscription,
                                                     DiarizedTranscription, ModelList, ModelOut)}


_OPENAI_ERRORS = errors({400: "bad request, not media, no audio, or cut short", 404: "unknown model",
                          409: "the job was canceled while the call waited", 413: "over a cap",
                          500: "the job failed on the server",
                          503: "no worker serves the model (`no_worker`), or its models or engine are missing",
                          504: "still running after the wait; poll the job named in the error"}, "OpenAIError")
_ANSWERS = {
    "application/json": {"schema": {"oneOf": [ref("TranscriptionJson"), ref("VerboseTranscription"),
                                              ref("DiarizedTranscription")]}},
    "text/plain": {"schema": {"type": "string"}},
    "application/x-subrip": {"schema": {"type": "string"}},
    "text/vtt": {"schema": {"type": "string"}},
    "text/event-stream": {"schema": {"type": "string", "description": "with stream=true: `data:` lines of "
                                     "transcript.text.delta (and transcript.text.segment with diarized_json) "
                                     "events, then transcript.text.done"}},
}


@bp.post("/v1/audio/transcriptions")
@bp.auth_required(auth.auth)  # the SDK's api_key; each route names it (APIFlask records a shared auth once)
@bp.input(TranscriptionForm, location="form_and_files", arg_name="form")
@bp.doc(summary="Transcribe a file (OpenAI-compatible)", responses={
    200: {"description": "the transcript in `response_format`, or its events with stream=true", "content": _ANSWERS},
    **_OPENAI_ERRORS})
def create_transcription(form):
    return _submit(form, "transcribe")


@bp.post("/v1/audio/translations")
@bp.auth_required(auth.auth)
@bp.input(TranslationForm, location="form_and_files", arg_name="form")
@bp.doc(summary="Translate speech to English text (OpenAI-compatible; Whisper, on the offline profile)", responses={
    200: {"description": "the English transcript in `response_format`",
          "content": {k: v for k, v in _ANSWERS.items() if k != "text/event-stream"}},
    **_OPENAI_ERRORS})
def create_translation(form):
    return _submit(form, "translate")


def _submit(form: dict, task: str):
    svc = services()
    options: JobOptions = form["options"]
    if task == "translate" and options.profile not in TRANSLATING_PROFILES:
        raise TingxieError(f"the model runs on the {options.profile} profile, which cannot translate; send "
                           f"model={TRANSLATING_PROFILES[0]} (Whisper)", code="unsupported_task")
    refusal = unserved(options.profile)
    if refusal is not None:  # 503, which the SDKs would retry by uploading the file again
        return error_response("no_worker", refusal, headers={"x-should-retry": "false"}, param="model")
    submitted = submit_job(svc, form["media"], options, tenant=auth.principal().tenant)
    render = partial(answer, submitted.id, form["format"], form["granularities"], stream=form["stream"])
    # The wait for the job's end holds no thread: it is awaited on the event loop (web.waits).
    if form["stream"]:
        head = Response(iter(()), content_type="text/event-stream; charset=utf-8",
                        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})
        return waits.defer_stream(submitted.id, svc.settings.openai_wait_s, head, render)
    return waits.defer(submitted.id, svc.settings.openai_wait_s, render)


def answer(job_id: str, fmt: str, granularities: set[str], *, stream: bool = False):
    """The call's answer from its job as it stands: the transcript, the job's error, or 504 naming
    the job (as server-sent events with ``stream``). The job is read for the caller: another
    tenant's is not found."""
    svc = services()
    with session_scope(svc.db) as session:
        job = session.get(Job, job_id)
        if job is None or not auth.principal().can_see(job.tenant):
            raise NotFoundError(f"no job {job_id}")
        if job.status != jobs.DONE:
            if job.status in jobs.TERMINAL:
                code = job.error_code or job.status
                # The job has ended for good: a retry would only upload the file again.
                failed = error_response(code, job.error_message or f"the job was {job.status}",
                                        headers={"x-should-retry": "false"}, extra={"job_id": job.id})
            else:
                failed = _still_running(job.id, svc.settings.openai_wait_s)
            return _stream_error(failed) if stream else failed
        content = session.get(Transcript, job.id).read()
        task = jobs.options_of(job).task
    if stream:
        return _stream(content, fmt)
    return _render(content, fmt, granularities, task)


def _still_running(job_id: str, wait_s: float):
    url = f"/api/v1/jobs/{job_id}"
    return error_response(
        "still_running",
        f"the transcription is still running after {wait_s:g} s; poll {url} for its status, then "
        f"{url}/transcript (the file is not needed again)",
        headers={"Location": url, "x-should-retry": "false"},
        extra={"job_id": job_id, "links": {"self": url, "transcript": f"{url}/transcript"}},
    )


def _seconds(ms: int) -> float:
    return round(ms / 1000, 3)


def _usage(transcript: contract.Transcript) -> dict:
    """OpenAI's usage of a duration-billed model: the seconds of audio."""
    return {"type": "duration", "seconds": _seconds(transcript.duration_ms)}


# Punctuation that is part of what a word says ("50%", "#3", "rock'n'roll'"), kept at its edges.
_WORD_MARKS = frozenset("%‰‱#&@*/\\'")


def _mark(ch: str) -> bool:
    return unicodedata.category(ch).startswith("P") and ch not in _WORD_MARKS


def _bare(word: str) -> str:
    """A word as OpenAI gives it: without the punctuation written before or after it."""
    start, end = 0, len(word)
    while start < end and _mark(word[start]):
        start += 1
    while end > start and _mark(word[end - 1]):
        end -= 1
    return word[start:end]


def _speaker_names(transcript: contract.Transcript) -> dict:
    return {s.id: s.name or s.id for s in transcript.speakers or ()}


def _diarized_segments(transcript: contract.Transcript) -> list[dict]:
    names = _speaker_names(transcript)
    return [{"type": "transcript.text.segment", "id": f"seg_{i}", "start": _seconds(s.start_ms),
             "end": _seconds(s.end_ms), "text": s.text, "speaker": names.get(s.speaker, s.speaker or "")}
            for i, s in enumerate(transcript.segments)]


def _render(transcript: contract.Transcript, fmt: str, granularities: set[str], task: str = "transcribe"):
    if fmt == "json":
        return jsonify(text=transcript.text, usage=_usage(transcript))
    if fmt == "text":
        return Response(transcript.text + "\n", content_type="text/plain; charset=utf-8")
    if fmt in ("srt", "vtt"):
        return Response(export.render(transcript, fmt), content_type=export.FORMATS[fmt])
    if fmt == "diarized_json":
        return jsonify(task=task, duration=_seconds(transcript.duration_ms), text=transcript.text,
                       segments=_diarized_segments(transcript), usage=_usage(transcript))
    body = {
        "task": task,
        "language": _LANGUAGE_NAMES.get(transcript.language, transcript.language),
        "duration": _seconds(transcript.duration_ms),
        "text": transcript.text,
    }
    speakers = _speaker_names(transcript)

    def who(item: contract.Segment | contract.Word) -> dict:
        """tingxie's extra field: the speaker, by name when one was given."""
        return {"speaker": speakers.get(item.speaker, item.speaker)} if item.speaker else {}

    if "segment" in granularities:
        body["segments"] = [
            {"id": i, "seek": 0, "start": _seconds(s.start_ms), "end": _seconds(s.end_ms), "text": s.text,
             "tokens": [], "temperature": 0.0, **who(s), **({"channel": s.channel} if s.channel is not None else {})}
            for i, s in enumerate(transcript.segments)
        ]
    if "word" in granularities:
        body["words"] = [{"word": bare, "start": _seconds(w.start_ms), "end": _seconds(w.end_ms), **who(w)}
                         for s in transcript.segments for w in s.words if (bare := _bare(w.text))]
    if transcript.speakers is not None:
        body["speakers"] = [{"id": s.id, "name": s.name} for s in transcript.speakers]
    body["usage"] = _usage(transcript)
    return jsonify(body)


def _sse(event: dict) -> str:
    return f"data: {json.dumps(event, ensure_ascii=False)}\n\n"


def deltas(transcript: contract.Transcript) -> list[str]:
    """The transcript's text cut after each sentence: the deltas, which put together are the text."""
    text, pieces, at = transcript.text, [], 0
    for segment in transcript.segments:
        found = text.find(segment.text, at)
        if found < 0 or not segment.text:
            continue
        end = found + len(segment.text)
        pieces.append(text[at:end])
        at = end
    if at < len(text):
        pieces.append(text[at:])
    return pieces


def _stream(transcript: contract.Transcript, fmt: str) -> Response:
    """OpenAI's stream of a finished transcript: a delta per sentence (with diarized_json, each
    sentence's segment event after its delta), then the whole text."""
    events = []
    segments = _diarized_segments(transcript) if fmt == "diarized_json" else None
    for i, piece in enumerate(deltas(transcript)):
        events.append({"type": "transcript.text.delta", "delta": piece})
        if segments is not None and i < len(segments):
            events[-1]["segment_id"] = segments[i]["id"]
            events.append(segments[i])
    events.append({"type": "transcript.text.done", "text": transcript.text, "usage": _usage(transcript)})
    return Response("".join(map(_sse, events)), content_type="text/event-stream; charset=utf-8")


def _stream_error(failed: Response) -> Response:
    """An error once the stream has begun: the event the SDKs raise (``data: {"error": ...}``)."""
    return Response(_sse(failed.get_json()), content_type="text/event-stream; charset=utf-8")


@bp.get("/v1/models")
@bp.auth_required(auth.auth)
@bp.doc(summary="Models a live worker serves now", responses=ok("ModelList"))
def list_models():
    return {"object": "list", "data": [_model(m) for m in served_models()]}


@bp.get("/v1/models/<model>")
@bp.auth_required(auth.auth)
@bp.doc(summary="One model", responses={**ok("ModelOut"), **errors({404: "unknown model"}, "OpenAIError")})
def get_model(model: str):
    model_of(model)
    return _model(model)


def _model(model: str) -> dict:
    return {"id": model, "object": "model", "created": _CREATED, "owned_by": "tingxie"}
