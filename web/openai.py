"""The OpenAI-compatible audio API: ``POST /v1/audio/transcriptions`` and ``GET /v1/models``.

Each call is an ordinary tingxie job (source ``openai``), made through the one submission path
and visible in the native API and on the page. The answer waits for the job, up to
``TINGXIE_OPENAI_WAIT_S``, on the event loop and the process's event hub, holding no request
thread (:mod:`web.waits`); past that the caller gets a 504 whose body and ``Location`` name the
job, with ``x-should-retry: false`` so the OpenAI SDK does not upload the file again, and polls
the native API. Errors use OpenAI's shape (see web.errors).

Models: ``whisper-1`` is the deployment's default profile (what clients written for OpenAI send);
every profile is also a model of its own name (``offline``, ``funasr``).
"""
from __future__ import annotations

from functools import partial
from pathlib import Path

from apiflask import APIBlueprint, Schema
from apiflask.fields import Boolean, File, Float, Integer, List, Nested, String
from apiflask.validators import Length, OneOf, Range
from flask import Response, current_app, jsonify
from marshmallow import EXCLUDE, post_load

from core import export, jobs
from core.db import session_scope
from core.errors import NotFoundError, TingxieError
from core.hotwords import MAX_HOTWORDS_BYTES, parse_hotwords
from core.models import Job, Transcript
from core.options import JobOptions, Source, parse_channel_names, speaker_fields
from core.services import Services
from core.settings import PROFILES
from core.submit import Upload, submit_job
from web import auth, waits
from web.errors import error_response
from web.schemas import SPEAKER_FIELDS, Out, errors, ok, ref

bp = APIBlueprint("openai", __name__, tag={
    "name": "OpenAI", "description": "the OpenAI audio API: every call is an ordinary tingxie job"})

DEFAULT_MODEL = "whisper-1"
RESPONSE_FORMATS = ("json", "text", "srt", "verbose_json", "vtt")
_CREATED = 1_764_460_800  # the models' "created" stamp: tingxie 0.1 (2025-11-30)
_LANGUAGE_NAMES = {"zh": "chinese", "en": "english"}


def services() -> Services:
    return current_app.extensions["tingxie"]


def model_ids() -> list[str]:
    return [DEFAULT_MODEL, *PROFILES]


def profile_for(model: str) -> str | None:
    """The profile a model name runs on; None for ``whisper-1`` (the deployment's default)."""
    if model == DEFAULT_MODEL:
        return None
    if model in PROFILES:
        return model
    raise TingxieError(f"the model {model!r} does not exist here; GET /v1/models lists {', '.join(model_ids())}",
                       code="unknown_model")


class OpenAIErrorBody(Out):
    message = String(required=True)
    type = String(required=True)
    param = String(required=True, allow_none=True)
    code = String(required=True, allow_none=True)


class OpenAIError(Out):
    error = Nested(OpenAIErrorBody, required=True)


class TranscriptionForm(Schema):
    """OpenAI's fields, plus tingxie's ``hotwords`` and ``itn`` (send them with the SDK's ``extra_body``)."""

    class Meta:
        unknown = EXCLUDE  # fields of newer OpenAI models (stream, include[], chunking_strategy) are ignored

    file = File(required=True, error_messages={"required": "send the audio as a multipart field named 'file'"})
    model = String(required=True, metadata={"description": "`whisper-1` (the default profile) or a profile name",
                                            "examples": [DEFAULT_MODEL, *PROFILES]})
    language = String(validate=Length(min=2, max=16), metadata={"description": "ISO-639-1 code; default: detected"})
    prompt = String(validate=Length(max=MAX_HOTWORDS_BYTES),
                    metadata={"description": "words or phrases to favour, read as hotwords (comma- or space-separated, "
                                             "or one `word weight` a line); Whisper sees them as its prompt"})
    response_format = String(load_default="json", validate=OneOf(RESPONSE_FORMATS))
    temperature = Float(validate=Range(min=0, max=1), metadata={"description": "accepted; decoding is deterministic"})
    timestamp_granularities = List(String(validate=OneOf(["word", "segment"])), data_key="timestamp_granularities[]",
                                   load_default=list, metadata={"description": "with verbose_json: `segment` (default), "
                                                                               "`word`, or both"})
    hotwords = String(validate=Length(max=MAX_HOTWORDS_BYTES), metadata={"description": "tingxie: hotwords, as the native API"})
    itn = Boolean(metadata={"description": "tingxie: write numbers as digits (default true)"})
    diarize = Boolean(metadata={"description": "tingxie: label speakers (verbose_json gets `speaker` on segments "
                                               "and words and a `speakers` list)"})
    num_speakers = Integer(metadata={"description": "tingxie: how many speakers, when known"})
    min_speakers = Integer(metadata={"description": "tingxie: at least this many speakers"})
    max_speakers = Integer(metadata={"description": "tingxie: at most this many speakers"})
    channels = String(metadata={"description": "tingxie: `separate` transcribes each channel on its own (segments get "
                                               "`channel` and its speaker); default `mix`"})
    channel_names = String(validate=Length(max=1024),
                           metadata={"description": "tingxie: the channels' names, comma-separated (`agent,customer`)"})

    @post_load
    def to_request(self, data: dict, **_) -> dict:
        text = "\n".join(t for t in (data.get("prompt"), data.get("hotwords")) if t)
        fields = {"profile": profile_for(data["model"]), "hotwords": parse_hotwords(text), "source": Source.OPENAI}
        if data.get("language"):
            fields["language"] = data["language"]
        if "itn" in data:
            fields["itn"] = data["itn"]
        fields.update(speaker_fields(*(data.get(name) for name in SPEAKER_FIELDS)))
        fields.update({name: data[name] for name in ("channels",) if name in data})
        if "channel_names" in data:
            fields["channel_names"] = parse_channel_names(data["channel_names"])
        return {"upload": data["file"], "options": JobOptions(**fields), "format": data["response_format"],
                "granularities": set(data["timestamp_granularities"]) or {"segment"}}


class Model(Out):
    id = String(required=True)
    object = String(required=True)
    created = Integer(required=True)
    owned_by = String(required=True)


class ModelList(Out):
    object = String(required=True)
    data = List(Nested(Model), required=True)


class TranscriptionJson(Out):
    text = String(required=True)


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
    word = String(required=True)
    start = Float(required=True, metadata={"description": "seconds"})
    end = Float(required=True, metadata={"description": "seconds"})


class VerboseTranscription(Out):
    task = String(required=True)
    language = String(required=True, metadata={"description": "the language's English name, as OpenAI gives it"})
    duration = Float(required=True, metadata={"description": "seconds"})
    text = String(required=True)
    segments = List(Nested(VerboseSegment))
    words = List(Nested(VerboseWord))


# Referenced by name from the hand-written response objects below.
COMPONENTS = {schema.__name__: schema
              for schema in (OpenAIError, TranscriptionJson, VerboseTranscription, ModelList, Model)}


_OPENAI_ERRORS = errors({400: "bad request", 404: "unknown model", 409: "the job was canceled while the call waited",
                          413: "over a cap", 415: "not audio or video",
                          422: "no audio, or cut short", 500: "the job failed on the server",
                          503: "the job's models or engine are missing",
                          504: "still running after the wait; poll the job named in the error"}, "OpenAIError")


@bp.post("/v1/audio/transcriptions")
@bp.auth_required(auth.auth)  # the SDK's api_key; each route names it (APIFlask records a shared auth once)
@bp.input(TranscriptionForm, location="form_and_files", arg_name="form")
@bp.doc(summary="Transcribe a file (OpenAI-compatible)", responses={
    200: {"description": "the transcript in `response_format`", "content": {
        "application/json": {"schema": {"oneOf": [ref("TranscriptionJson"), ref("VerboseTranscription")]}},
        "text/plain": {"schema": {"type": "string"}},
        "application/x-subrip": {"schema": {"type": "string"}},
        "text/vtt": {"schema": {"type": "string"}}}},
    **_OPENAI_ERRORS})
def create_transcription(form):
    svc = services()
    upload = form["upload"]
    submitted = submit_job(svc, Upload(Path(upload.stream.name), upload.filename or ""), form["options"],
                           tenant=auth.principal().tenant)
    # The wait for the job's end holds no thread: it is awaited on the event loop (web.waits).
    return waits.defer(submitted.id, svc.settings.openai_wait_s,
                       partial(answer, submitted.id, form["format"], form["granularities"]))


def answer(job_id: str, fmt: str, granularities: set[str]):
    """The call's answer from its job as it stands: the transcript, the job's error, or 504 naming
    the job. The job is read for the caller: another tenant's is not found."""
    svc = services()
    with session_scope(svc.db) as session:
        job = session.get(Job, job_id)
        if job is None or not auth.principal().can_see(job.tenant):
            raise NotFoundError(f"no job {job_id}")
        if job.status != jobs.DONE:
            if job.status in jobs.TERMINAL:
                code = job.error_code or job.status
                # The job has ended for good: a retry would only upload the file again.
                return error_response(code, job.error_message or f"the job was {job.status}",
                                      headers={"x-should-retry": "false"}, extra={"job_id": job.id})
            return _still_running(job.id, svc.settings.openai_wait_s)
        data = session.get(Transcript, job.id).data
    return _render(data, fmt, granularities)


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


def _render(data: dict, fmt: str, granularities: set[str]):
    if fmt == "json":
        return jsonify(text=data["text"])
    if fmt == "text":
        return Response(data["text"] + "\n", content_type="text/plain; charset=utf-8")
    if fmt in ("srt", "vtt"):
        return Response(export.render(data, fmt), content_type=export.FORMATS[fmt])
    body = {
        "task": "transcribe",
        "language": _LANGUAGE_NAMES.get(data["language"], data["language"]),
        "duration": _seconds(data["duration_ms"]),
        "text": data["text"],
    }
    speakers = {s["id"]: s.get("name") or s["id"] for s in data.get("speakers") or ()}

    def who(item: dict) -> dict:
        """tingxie's extra field: the speaker, by name when one was given."""
        return {"speaker": speakers.get(item["speaker"], item["speaker"])} if item.get("speaker") else {}

    if "segment" in granularities:
        body["segments"] = [
            {"id": i, "seek": 0, "start": _seconds(s["start_ms"]), "end": _seconds(s["end_ms"]), "text": s["text"],
             "tokens": [], "temperature": 0.0, **who(s), **({"channel": s["channel"]} if "channel" in s else {})}
            for i, s in enumerate(data["segments"])
        ]
    if "word" in granularities:
        body["words"] = [{"word": w["text"], "start": _seconds(w["start_ms"]), "end": _seconds(w["end_ms"]), **who(w)}
                         for s in data["segments"] for w in s["words"]]
    if data.get("speakers") is not None:
        body["speakers"] = data["speakers"]
    return jsonify(body)


@bp.get("/v1/models")
@bp.auth_required(auth.auth)
@bp.doc(summary="Models this deployment serves", responses=ok("ModelList"))
def list_models():
    return {"object": "list", "data": [_model(m) for m in model_ids()]}


@bp.get("/v1/models/<model>")
@bp.auth_required(auth.auth)
@bp.doc(summary="One model", responses={**ok("Model"), **errors({404: "unknown model"}, "OpenAIError")})
def get_model(model: str):
    profile_for(model)
    return _model(model)


def _model(model: str) -> dict:
    return {"id": model, "object": "model", "created": _CREATED, "owned_by": "tingxie"}
