"""Request and response schemas of the native API: one schema validates a request and documents it
in the OpenAPI document (APIFlask on marshmallow).

A request schema only turns what the client sent into typed values; the rules of a job's options
live in :class:`core.options.JobOptions` and the submission path, so the REST door, the OpenAI
door and the FunASR gateway cannot disagree about them.
"""
from __future__ import annotations

from apiflask import Schema
from apiflask.fields import Boolean, DateTime, Dict, File, Float, Integer, List, Nested, String, Tuple
from apiflask.validators import Length, OneOf, Range
from marshmallow import INCLUDE, ValidationError, post_load
from marshmallow.fields import Field

from pathlib import Path

from core.batches import MAX_KEY_CHARS as MAX_BATCH_KEY_CHARS, MAX_NAME_CHARS as MAX_BATCH_NAME_CHARS, MAX_SOURCES
from core.errors import BadOptionError
from contract import Stage
from core.export import CUE_S_RANGE, FORMATS, LINE_CHARS_RANGE, LINES_RANGE, SubtitleLimits
from core.hotwords import parse_hotwords
from core.jobs import STATUSES
from core.options import CHANNEL_MODES, JobOptions, Source, parse_channel_names, speaker_fields
from core.settings import PROFILES
from core.submit import Link, Upload
from core.sources import MAX_URL_CHARS as MAX_SOURCE_URL_CHARS

SPEAKER_FIELDS = ("diarize", "num_speakers", "min_speakers", "max_speakers")
MAX_PAGE = 1_000_000
MAX_PER_PAGE = 100
MAX_URL_CHARS = 2048
# A batch's jobs are listed in bigger pages: a client resuming an upload reads them all.
MAX_BATCH_JOBS_PER_PAGE = 1000


def ref(name: str) -> dict:
    """A reference to a schema registered as a component (see :data:`COMPONENTS`)."""
    return {"$ref": f"#/components/schemas/{name}"}


def ok(schema: str, description: str = "OK", status: int = 200, headers: dict | None = None) -> dict:
    """A JSON response of an operation, documented with a registered schema."""
    response = {"description": description, "content": {"application/json": {"schema": ref(schema)}}}
    if headers:
        response["headers"] = headers
    return {status: response}


def errors(descriptions: dict[int, str], schema: str = "Error") -> dict:
    """Error responses of an operation, documented with ``schema`` (``OpenAIError`` on /v1)."""
    return {status: {"description": text, "content": {"application/json": {"schema": ref(schema)}}}
            for status, text in descriptions.items()}


class Out(Schema):
    """A response schema: later versions may add fields, so clients must accept unknown ones."""

    class Meta:
        unknown = INCLUDE


class ErrorBody(Out):
    code = String(required=True, metadata={"description": "stable, for programs (e.g. `bad_media`)"})
    message = String(required=True, metadata={"description": "for a person: what to change"})


class Error(Out):
    """Every error of the native API."""

    error = Nested(ErrorBody, required=True)


class Formats(Field):
    """Export formats: ``"srt,json"`` (a form) or ``["srt", "json"]`` (JSON); JobOptions checks the names."""

    def _deserialize(self, value, attr, data, **kwargs) -> tuple[str, ...]:
        if isinstance(value, str):
            value = value.split(",")
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
            raise ValidationError("expected format names, e.g. srt,json")
        return tuple(v.strip().lower() for v in value if v.strip())


SOURCE_URL = String(validate=Length(min=1, max=MAX_SOURCE_URL_CHARS), metadata={
    "description": "instead of a file: a link a worker fetches, `http(s)://...` (public addresses only, unless "
                   "TINGXIE_FETCH_ALLOW lists it) or `s3://bucket/key` within the tenant's TINGXIE_TENANT_SOURCES "
                   "(else 404)",
    "examples": ["https://example.com/calls/0412.wav", "s3://calls/acme/0412.wav"]})


class JobForm(Schema):
    """``POST /api/v1/jobs``: the file (or its link) and the job's options. The same fields may be
    sent as a JSON object when there is no file (``source_url``)."""

    file = File(metadata={"description": "the audio or video, in any container ffmpeg reads; or send `source_url`"})
    source_url = SOURCE_URL
    output_url = String(validate=Length(max=MAX_SOURCE_URL_CHARS), metadata={
        "description": "`s3://bucket/prefix/` that receives the transcript when the job is done, as "
                       "`<prefix><job id>.<format>`; within the tenant's TINGXIE_TENANT_OUTPUTS (else 404)"})
    output_formats = Formats(metadata={"description": "what `output_url` receives: `json` (default), `txt`, `srt`, "
                                                      "`vtt`, comma-separated (a list in JSON)",
                                       "type": "string", "examples": ["json,srt"]})
    language = String(metadata={"description": "`auto` (default) or a language code the profile serves: "
                                               "ISO 639-1 on `offline` (every language Whisper knows), `zh` or `en` on "
                                               "`funasr`; `zh-hant` or `zh-tw` on both for traditional characters (`zh` is "
                                               "simplified); GET /api/v1/profiles lists them",
                                "examples": ["auto", "zh", "en", "ja"]})
    itn = Boolean(metadata={"description": "write numbers as digits (inverse text normalisation); default true"})
    hotwords = String(metadata={
        "description": "phrases to favour: one `word weight` a line, a JSON object `{\"word\": weight}`, "
                       "comma- or space-separated words"})
    profile = String(metadata={"description": "model profile; default: the deployment's", "enum": list(PROFILES)})
    callback_url = String(validate=Length(max=MAX_URL_CHARS),
                          metadata={"description": "http(s) URL that receives the finished job (a signed webhook)"})
    source = String(validate=OneOf([Source.API.value, Source.PAGE.value]),
                    metadata={"description": "which client sent the job; the web page sends `page`"})
    diarize = Boolean(metadata={"description": "label each sentence and word with its speaker (S1, S2...); "
                                               "default false; a speaker count implies true"})
    num_speakers = Integer(metadata={"description": "how many speakers there are, when known (default: estimated)"})
    min_speakers = Integer(metadata={"description": "at least this many speakers"})
    max_speakers = Integer(metadata={"description": "at most this many speakers"})
    retain_media_days = Float(validate=Range(min=0, min_inclusive=False), metadata={
        "description": "delete the media from the store this many days after the job was accepted (the "
                       "transcript stays); at most the deployment's TINGXIE_RETAIN_MEDIA_DAYS, its default"})
    channels = String(metadata={
        "description": "`mix` (default): all channels mixed down; `separate`: each channel of a stereo or "
                       "multi-channel recording (a call: agent and customer) transcribed on its own, sentences "
                       "merged by time, each with its `channel` and speaker `C0`, `C1`...; not with diarize",
        "enum": list(CHANNEL_MODES)})
    channel_names = String(validate=Length(max=1024), metadata={
        "description": "with channels=separate: the channels' names in order, comma-separated (`agent,customer`); "
                       "exports label sentences with them; PUT .../speakers renames them",
        "examples": ["agent,customer"]})

    @post_load
    def to_options(self, data: dict, **_) -> tuple:
        """(the file part or None, the link or None, the options): the door takes exactly one of
        the first two (:func:`media_of`) once it knows which body it was sent."""
        upload, source_url = data.pop("file", None), data.pop("source_url", None)
        return upload, source_url, job_options(data)


def job_options(data: dict) -> JobOptions:
    """The option fields of a loaded :class:`JobForm` (or :class:`BatchCreate`) as one JobOptions."""
    if "hotwords" in data:
        data["hotwords"] = parse_hotwords(data["hotwords"])
    if "source" in data:
        data["source"] = Source(data["source"])
    data.update(speaker_fields(*(data.pop(name, None) for name in SPEAKER_FIELDS)))
    if "channel_names" in data:
        data["channel_names"] = parse_channel_names(data["channel_names"])
    return JobOptions(**data)


class BatchCreate(JobForm):
    """``POST /api/v1/batches`` (JSON): the batch's sources, or none for a batch open to uploads,
    and one set of options for all its jobs (the fields ``POST /api/v1/jobs`` takes; its
    ``callback_url`` receives the batch's one webhook when it ends)."""

    class Meta:
        exclude = ("file", "source_url")

    sources = List(String(validate=Length(min=1, max=MAX_URL_CHARS)), validate=Length(max=MAX_SOURCES, error=f"at most {MAX_SOURCES} sources in one batch; split it"), metadata={
        "description": f"at most {MAX_SOURCES} http(s) links or `s3://bucket/key` keys, each fetched by a worker; "
                       "absent: the batch is open, files are uploaded into it one by one "
                       "(`POST .../files`), then it is closed (`POST .../close`)"})
    name = String(validate=Length(max=MAX_BATCH_NAME_CHARS), metadata={"description": "a label for people"})

    @post_load
    def to_options(self, data: dict, **_) -> tuple:
        sources, name = data.pop("sources", None), data.pop("name", None)
        return sources, name, job_options(data)


class BatchFileForm(Schema):
    """``POST /api/v1/batches/{id}/files``: one file into an open batch."""

    file = File(required=True, metadata={"description": "the audio or video, in any container ffmpeg reads"},
                error_messages={"required": "send the audio or video as a multipart form field named 'file'"})
    key = String(validate=Length(min=1, max=MAX_BATCH_KEY_CHARS), metadata={
        "description": "the file's name in the batch (e.g. its path relative to the folder sent), unique within "
                       "it: uploading a key again answers the job it already has (200) instead of adding a "
                       "second, so a client can resume an interrupted upload; names its transcripts in the zip"})


class BatchListQuery(Schema):
    page = Integer(load_default=1, validate=Range(min=1, max=MAX_PAGE))
    per_page = Integer(load_default=20, validate=Range(min=1, max=MAX_PER_PAGE))


class BatchJobsQuery(Schema):
    page = Integer(load_default=1, validate=Range(min=1, max=MAX_PAGE))
    per_page = Integer(load_default=100, validate=Range(min=1, max=MAX_BATCH_JOBS_PER_PAGE))
    status = String(validate=OneOf(list(STATUSES)))


def media_of(upload, source_url: str | None) -> Upload | Link:
    """What a door was sent to transcribe: a spooled file part or a link, exactly one of them."""
    if upload is not None and source_url:
        raise BadOptionError("send a file or a source_url, not both", code="bad_source_url")
    if source_url:
        return Link(source_url)
    if upload is None:
        raise BadOptionError("send the audio or video as a multipart form field named 'file', "
                             "or a link to it as source_url", code="no_file")
    return Upload(Path(upload.stream.name), upload.filename or "")


class JobListQuery(Schema):
    page = Integer(load_default=1, validate=Range(min=1, max=MAX_PAGE))
    per_page = Integer(load_default=20, validate=Range(min=1, max=MAX_PER_PAGE))
    status = String(validate=OneOf(list(STATUSES)))
    tenant = String(validate=Length(min=1, max=64),
                    metadata={"description": "only this tenant's jobs (an admin token sees every tenant's)"})
    in_batch = Boolean(metadata={"description": "false: only jobs outside any batch (the page lists a batch as one "
                                                "row); true: only batches' jobs; absent: all"})


class TranscriptQuery(Schema):
    format = String(load_default="json", validate=OneOf(list(FORMATS)))
    download = Boolean(load_default=False, metadata={"description": "answer as an attachment with a file name"})
    # Subtitle cues (srt, vtt); core.export.SubtitleLimits checks the ranges.
    max_line_chars = Integer(metadata={"description": "characters a line; default 42 for Latin script, 16 for CJK",
                                       "minimum": LINE_CHARS_RANGE[0], "maximum": LINE_CHARS_RANGE[1]})
    max_lines = Integer(metadata={"description": "lines a cue; default 2",
                                  "minimum": LINES_RANGE[0], "maximum": LINES_RANGE[1]})
    max_cue_s = Float(metadata={"description": "seconds a cue stays up at most; default 7",
                                "minimum": CUE_S_RANGE[0], "maximum": CUE_S_RANGE[1]})

    @post_load
    def to_limits(self, data: dict, **_) -> dict:
        names = ("max_line_chars", "max_lines", "max_cue_s")
        limits = SubtitleLimits(**{name: data.pop(name) for name in names if name in data})
        return {**data, "limits": limits}


class ZipQuery(TranscriptQuery):
    """``GET /api/v1/batches/{id}/transcripts.zip``: which formats, and the subtitle cues' shape."""

    class Meta:
        exclude = ("download",)

    format = String(load_default="json", validate=Length(min=1, max=64), metadata={
        "description": f"comma-separated, each one of {', '.join(FORMATS)}: every transcript in each",
        "examples": ["srt,json"]})

    @post_load
    def to_formats(self, data: dict, **_) -> dict:
        formats = tuple(dict.fromkeys(part.strip() for part in data["format"].split(",") if part.strip()))
        unknown = [fmt for fmt in formats if fmt not in FORMATS]
        if not formats or unknown:
            raise ValidationError(f"format must be one or more of {', '.join(FORMATS)}, comma-separated",
                                  field_name="format")
        return {**data, "format": formats}


class JobLinks(Out):
    self = String(required=True)
    transcript = String(required=True)
    media = String(required=True)
    events = String(required=True, metadata={"description": "WebSocket: the job's live events"})


class Accepted(Out):
    id = String(required=True)
    status = String(required=True, validate=OneOf(list(STATUSES)))
    links = Nested(JobLinks, required=True)


class JobOptionsOut(Out):
    language = String(required=True)
    itn = Boolean(required=True)
    hotwords = List(Tuple((String(), Float(allow_none=True))), required=True,
                    metadata={"description": "[word, weight or null] pairs"})
    diarize = Boolean(required=True)
    num_speakers = Integer(required=True, allow_none=True)
    min_speakers = Integer(required=True, allow_none=True)
    max_speakers = Integer(required=True, allow_none=True)
    output_url = String(allow_none=True, metadata={"description": "where the transcript is delivered (`s3://...`)"})
    output_formats = List(String(), metadata={"description": "the formats delivered to `output_url`"})
    channels = String(validate=OneOf(list(CHANNEL_MODES)),
                      metadata={"description": "present when the channels are transcribed apart (`separate`)"})
    channel_names = List(String(), metadata={"description": "with `channels`: the channels' names, in order"})

    # apispec leaves a Tuple's items empty under OpenAPI 3.1; web.create_app writes them out.
    HOTWORD_PAIR = {"type": "array", "prefixItems": [{"type": "string"}, {"type": ["number", "null"]}],
                    "minItems": 2, "maxItems": 2}


class Timings(Out):
    queued_s = Float(required=True, allow_none=True)
    running_s = Float(required=True, allow_none=True)


class Webhook(Out):
    attempts = Integer(required=True)
    last_status = String(required=True, allow_none=True)
    delivered_at = String(required=True, allow_none=True)


class Output(Out):
    last_status = String(required=True, allow_none=True,
                         metadata={"description": "`delivered: s3://...`, or the last error (`error: ...`, `refused: ...`)"})
    delivered_at = String(required=True, allow_none=True)


class Job(Out):
    id = String(required=True)
    status = String(required=True, validate=OneOf(list(STATUSES)))
    waiting_reason = String(required=True, allow_none=True, metadata={
        "description": "why a queued job is not being taken, e.g. `waiting for a funasr worker` when no live "
                       "worker serves its profile, or what a running job waits for (`media store unavailable`: "
                       "its worker retries until TINGXIE_STORE_RETRY_S); null otherwise",
        "examples": ["waiting for a funasr worker", "media store unavailable"]})
    stage = String(required=True, allow_none=True, validate=OneOf(list(Stage)))
    progress = Float(required=True, metadata={"description": "0..1 over the whole job"})
    filename = String(required=True)
    size_bytes = Integer(required=True)
    duration_ms = Integer(required=True, allow_none=True)
    profile = String(required=True)
    options = Nested(JobOptionsOut, required=True)
    source = String(required=True)
    priority = Integer(required=True)
    tenant = String(required=True, metadata={"description": "who the job belongs to"})
    attempt = Integer(required=True)
    error = Nested(ErrorBody, required=True, allow_none=True)
    warnings = List(String(), required=True)
    created_at = String(required=True)
    started_at = String(required=True, allow_none=True)
    finished_at = String(required=True, allow_none=True)
    media_expires_at = String(required=True, allow_none=True, metadata={
        "description": "when the media leaves the store (retention); null: kept"})
    media_expired_at = String(required=True, allow_none=True, metadata={
        "description": "when the media was deleted by retention (the transcript stays); GET …/media then answers 410"})
    timings = Nested(Timings, required=True)
    callback_url = String(required=True, allow_none=True)
    webhook = Nested(Webhook, required=True)
    source_url = String(allow_none=True, metadata={"description": "the link the job's media was fetched from"})
    output = Nested(Output, allow_none=True, metadata={"description": "delivery to `options.output_url`"})
    links = Nested(JobLinks, required=True)
    batch_id = String(required=True, allow_none=True, metadata={"description": "the batch the job was submitted in"})
    batch_key = String(required=True, allow_none=True, metadata={"description": "the job's key in its batch"})


class ListLinks(Out):
    next = String()
    prev = String()


class JobList(Out):
    items = List(Nested(Job), required=True)
    page = Integer(required=True)
    per_page = Integer(required=True)
    total = Integer(required=True)
    links = Nested(ListLinks, required=True)


class Word(Out):
    start_ms = Integer(required=True)
    end_ms = Integer(required=True)
    text = String(required=True)
    start_char = Integer(required=True, allow_none=True,
                         metadata={"description": "where the word starts in its segment's `text` (its place: "
                                                  "`text[start_char:end_char]`); null only for some transcripts "
                                                  "stored before version 2 whose words do not spell the text"})
    end_char = Integer(required=True, allow_none=True, metadata={"description": "where the word ends in its "
                                                                                "segment's `text`"})
    speaker = String(metadata={"description": "the speaker's id (`S1`...), when the job was diarized"})


class Segment(Out):
    start_ms = Integer(required=True)
    end_ms = Integer(required=True)
    text = String(required=True)
    punc = String()
    words = List(Nested(Word), required=True)
    tokens = List(List(Integer()))
    speaker = String(metadata={"description": "the speaker's id (`S1`...), when the job was diarized; the "
                                              "channel's speaker (`C0`, `C1`...) with channels=separate"})
    channel = Integer(metadata={"description": "the channel the sentence was heard on (0 is the first), with "
                                               "channels=separate"})


class Speaker(Out):
    id = String(required=True, metadata={"description": "`S1`, `S2`... in order of first speech; `C0`, `C1`... "
                                                        "in channel order with channels=separate"})
    name = String(required=True, allow_none=True, metadata={"description": "a name given with PUT .../speakers"})


class Transcript(Out):
    v = Integer(required=True, metadata={"description": "the transcript's stored-form version (2)"})
    text = String(required=True)
    language = String(required=True)
    duration_ms = Integer(required=True)
    segments = List(Nested(Segment), required=True)
    speakers = List(Nested(Speaker), metadata={"description": "present when the job was diarized or its "
                                                              "channels transcribed apart"})


class SpeakerNames(Schema):
    """``PUT /api/v1/jobs/{id}/speakers``: names for a diarized transcript's speakers, by id; null
    clears a name. Every export uses them."""

    names = Dict(keys=String(), values=String(allow_none=True, validate=Length(max=64)), required=True,
                 metadata={"example": {"S1": "Alice", "S2": "Bob"}})


class Language(Out):
    code = String(required=True, metadata={"description": "`auto` or an ISO 639-1 code"})
    name = String(required=True)


class Profile(Out):
    name = String(required=True)
    default = Boolean(required=True, metadata={"description": "what a job that names no profile runs on"})
    workers = Integer(required=True, metadata={"description": "live workers serving it now; 0: its jobs wait, and "
                                                             "fail no_worker after TINGXIE_NO_WORKER_S"})
    languages = List(Nested(Language), required=True)


class ProfileList(Out):
    items = List(Nested(Profile), required=True)


class UsageQuery(Schema):
    """``GET /api/v1/usage``: a time range (UTC; ISO 8601 dates or date-times) and a grouping."""

    from_ = DateTime(data_key="from", metadata={"description": "start, inclusive; default: the first of this month (UTC)",
                                                "examples": ["2026-12-01"]})
    to = DateTime(metadata={"description": "end, exclusive; default: now", "examples": ["2027-01-01"]})
    group = String(load_default="day", validate=OneOf(["day", "month", "total"]))
    tenant = String(validate=Length(min=1, max=64),
                    metadata={"description": "only this tenant (an admin sees every tenant; others only their own)"})


class UsageItem(Out):
    period = String(required=True, metadata={"description": "`2026-12-07` (day), `2026-12` (month) or `total`"})
    tenant = String(required=True)
    profile = String(required=True)
    jobs = Integer(required=True, metadata={"description": "jobs accepted in the period"})
    done_jobs = Integer(required=True)
    audio_seconds = Float(required=True, metadata={"description": "audio of the period's jobs that are done"})


class TenantQuota(Out):
    tenant = String(required=True)
    quota_hours = Float(required=True, allow_none=True, metadata={"description": "TINGXIE_TENANT_QUOTA_HOURS; null: none"})
    used_hours = Float(required=True, metadata={"description": "this month's audio of done, queued and running jobs"})
    resets_at = String(required=True)


class UsageReport(Out):
    start = String(required=True)
    end = String(required=True)
    group = String(required=True)
    items = List(Nested(UsageItem), required=True)
    quota = Nested(TenantQuota, allow_none=True, metadata={"description": "the caller's tenant's month (null for an admin)"})


class Health(Out):
    status = String(required=True)


class Readiness(Out):
    status = String(required=True, validate=OneOf(["ready", "not_ready"]))
    checks = Dict(keys=String(), values=String(), required=True)


class BatchCounts(Out):
    queued = Integer(required=True)
    running = Integer(required=True)
    done = Integer(required=True)
    failed = Integer(required=True)
    canceled = Integer(required=True)


class BatchLinks(Out):
    self = String(required=True)
    jobs = String(required=True)
    files = String(required=True, metadata={"description": "POST a file here while the batch is open"})
    close = String(required=True)
    cancel = String(required=True)
    transcripts = String(required=True, metadata={"description": "the finished transcripts as one zip"})


class Batch(Out):
    id = String(required=True)
    name = String(required=True, allow_none=True)
    status = String(required=True, validate=OneOf(["open", "running", "completed", "canceled"]), metadata={
        "description": "`open`: taking files; `running`: closed, jobs left; `completed`: every job ended "
                       "(done, failed or canceled); `canceled`"})
    total = Integer(required=True, metadata={"description": "jobs in the batch"})
    counts = Nested(BatchCounts, required=True, metadata={"description": "jobs per status"})
    progress = Float(required=True, metadata={"description": "0..1 over the batch's audio"})
    eta_s = Float(required=True, allow_none=True, metadata={
        "description": "seconds until the last job ends, at the rate the batch has gone so far; null before "
                       "any audio is transcribed, and once it has ended"})
    profile = String(required=True)
    options = Nested(JobOptionsOut, required=True)
    tenant = String(required=True)
    callback_url = String(required=True, allow_none=True)
    webhook = Nested(Webhook, required=True)
    created_at = String(required=True)
    closed_at = String(required=True, allow_none=True)
    finished_at = String(required=True, allow_none=True)
    links = Nested(BatchLinks, required=True)


class BatchList(Out):
    items = List(Nested(Batch), required=True)
    page = Integer(required=True)
    per_page = Integer(required=True)
    total = Integer(required=True)
    links = Nested(ListLinks, required=True)


# Response schemas, referenced by name from each operation's responses (web.create_app registers
# them in the OpenAPI document once each; routes return plain dicts).
COMPONENTS: dict[str, type[Schema]] = {
    schema.__name__: schema
    for schema in (Error, Accepted, Job, JobList, Transcript, Speaker, ProfileList, UsageReport, Health, Readiness, Batch,
                   BatchList)
}
