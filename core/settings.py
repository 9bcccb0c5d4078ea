"""Settings, read from the environment in exactly one place (:meth:`Settings.from_env`).

Tests build :class:`Settings` directly. Every field documents its unit and default; the
README's configuration table lists the same variables. A bad value stops the process at start
with one line naming the variable, the value and what is allowed (:class:`SettingsError`),
never a traceback and never a silent default; so does a ``TINGXIE_*`` name that is not a setting.
"""
from __future__ import annotations

import difflib
import ipaddress
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping

from contract.profiles import PROFILE_NAMES
from core.sources import format_tenant_prefixes, parse_tenant_prefixes
from core.tenants import tenant_name

ENV_PREFIX = "TINGXIE_"
# Profiles a job may name: the contract's catalogue, which the pipeline loads them from.
PROFILES = PROFILE_NAMES
# Variables read by the `tingxie submit` / `tingxie jobs` client, not by the service.
CLIENT_VARIABLES = ("SERVER", "TOKEN")


class SettingsError(ValueError):
    """One line per bad variable: the name, the value, what is allowed."""

    def __init__(self, problems: list[str]):
        super().__init__("\n".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class Settings:
    # Everything the embedded default keeps (database, broker queue, media, models) lives here.
    data_dir: Path = Path("tingxie-data")
    # SQLAlchemy URL; default: SQLite (WAL) file in data_dir.
    database_url: str = ""
    # Celery broker URL; default: kombu's filesystem transport under data_dir/broker (no server).
    broker_url: str = ""
    # Redis URL for the event channel; default: the broker's when it is Redis, else events are
    # read from the database.
    events_url: str = ""
    # Model profile used when a job names none: "offline" (faster-whisper) or "funasr". A worker
    # serves this profile unless worker_profiles says otherwise.
    profile: str = "offline"
    # Profiles a worker consumes jobs of (it loads their model sets); empty: (profile,).
    worker_profiles: tuple[str, ...] = ()
    # Where model files are found / downloaded to (FunASR's --download-model-dir); default data_dir/models.
    model_dir: Path | None = None
    # cpu | cuda | cuda:N
    device: str = "cpu"
    # ASR batches hold at most this many seconds of audio in total (eight 30 s Whisper windows).
    batch_seconds: float = 240.0
    # Uploads larger than this are refused with 413. Default 4 GiB.
    max_upload_bytes: int = 4 * 1024**3
    # Media longer than this is refused (at upload when the probe can tell, else the job fails). Default 4 h.
    max_duration_s: float = 4 * 3600.0
    # A running job whose worker has not reported for this long is handed to another worker.
    job_lease_s: float = 60.0
    # Server-wide hotword file, one "word weight" a line (FunASR's --hotword); merged with each job's
    # at submission.
    hotword_file: Path | None = None
    # Most hotwords one job may carry (after merging with the server-wide file).
    max_hotwords: int = 1000
    # Web tier bind address.
    host: str = "127.0.0.1"
    port: int = 8000
    # HTTP requests one web process serves at once (threads; uploads hold one each). Job-events
    # sockets need none.
    web_threads: int = 32
    # FunASR-protocol WebSocket gateway: port, TLS certificate/key ("0" as certfile: plain ws).
    gateway_port: int = 10095
    gateway_certfile: str = ""
    gateway_keyfile: str = ""
    # Webhooks: HMAC-SHA256 secret; hosts/CIDRs that may be called although private or loopback.
    webhook_secret: str = ""
    webhook_allow: tuple[str, ...] = ()
    # Path of an ffmpeg binary; default: the system's, else the one imageio-ffmpeg ships.
    ffmpeg: str = ""
    # Load the model set when the worker process starts rather than on its first job.
    preload_models: bool = True
    # Jobs one worker process runs at once, as threads sharing its one model set (a GPU worker:
    # concurrent jobs' ASR batches and punctuation windows interleave on the GPU). Default 1.
    worker_threads: int = 1
    # Seconds POST /v1/audio/transcriptions waits for its job before answering with the job's id
    # (the caller then polls the native API). Default 300, under the OpenAI SDK's 600 s timeout.
    openai_wait_s: float = 300.0
    # A queued job whose profile no live worker has served for this long fails with no_worker
    # (instead of waiting for ever), and the OpenAI door refuses such a profile at once. Default 600.
    no_worker_s: float = 600.0
    # Where uploads are stored: "" for the local filesystem under data_dir/media (the embedded
    # default), or s3://bucket/prefix for S3-compatible object storage (MinIO, Ceph RGW, AWS S3,
    # Aliyun OSS), which the web tier and workers on several hosts share instead of a disk.
    storage_url: str = ""
    # S3 endpoint (e.g. http://minio:9000, https://oss-cn-hangzhou.aliyuncs.com); default: AWS's.
    s3_endpoint_url: str = ""
    # S3 region (OSS: its region id, e.g. oss-cn-hangzhou); default us-east-1.
    s3_region: str = ""
    # S3 credentials; default: boto3's own chain (AWS_ACCESS_KEY_ID..., an instance role).
    s3_access_key_id: str = ""
    s3_secret_access_key: str = ""
    # Bucket in the path (MinIO, Ceph RGW) or in the host name (Aliyun OSS requires it); auto: boto3's choice.
    s3_addressing_style: str = "auto"
    # Local scratch: upload spooling, media copied from object storage, decoded PCM. Never shared
    # between hosts. Default data_dir/work.
    scratch_dir: Path | None = None
    # Who may call the web tier without a token (see core.access): "auto" lets requests from this
    # machine in as the "local" tenant while the web tier is bound to a loopback address, and asks
    # every other request for a token; "required" asks every request; "insecure-no-auth" lets every
    # request in as "local" on any address.
    auth: str = "auto"
    # Browser origins (scheme://host[:port]) allowed besides the service's own: state-changing
    # requests from the page and both WebSockets (events and the FunASR gateway) check Origin.
    allowed_origins: tuple[str, ...] = ()
    # Reverse proxies in front of the web tier whose X-Forwarded-For/-Proto/-Host are trusted (0: none).
    trusted_proxies: int = 0
    # How long a page session lasts after sign-in, in hours (never longer than its token).
    session_hours: float = 12.0
    # Requests per token (per client address without one), and uploads (a job or an OpenAI call),
    # as Flask-Limiter strings ("1200/minute", "20/second;1000/hour"); "off" turns a limit off.
    rate_limit: str = "1200/minute"
    upload_rate_limit: str = "120/minute"
    # Requests with credentials that fail (a bad, revoked or expired token or session, a bad sign-in),
    # per client address: past it, that address's requests with credentials get 429 until the window ends.
    auth_fail_rate_limit: str = "60/minute"
    # Jobs one tenant may have queued or running at once; a submission past it is refused (429).
    tenant_max_jobs: int = 1000
    # Jobs of one tenant sent to the broker (queued there or running) at once, per queue (batch,
    # interactive); the rest wait in the database and are sent as these end (core.dispatch), so one
    # tenant's backlog never stands in front of another tenant's first job. About the number of
    # jobs the workers run at once. Default 8.
    tenant_inflight: int = 8
    # The FunASR gateway: the tenant of jobs from clients that send no token, and whether every
    # connection must present one.
    gateway_tenant: str = "local"
    gateway_require_token: bool = False
    # Let pages opened from disk (FunASR's html5 page, "Method 1": ``Origin: null``) use the gateway.
    # Any sandboxed frame or local file also sends ``null``, so every such page may then make jobs of
    # the gateway's tenant through the visitor's browser. Default off.
    gateway_allow_file_pages: bool = False
    # Seconds a client may go without sending a byte of a request's headers or body before the
    # web server drops the connection (slow or stalled uploads). Default 60.
    request_idle_timeout_s: float = 60.0
    # A request body is read on the event loop before the request is given a thread; after its first
    # request_idle_timeout_s it must keep arriving at this rate on average, and it must be whole within
    # body_timeout_s, else 408. Defaults 16 KiB/s and 3600 s.
    body_min_rate_bytes_s: int = 16 * 1024
    body_timeout_s: float = 3600.0
    # Bodies of routes anyone may call (signing in...): at most this much. Default 8 KiB.
    public_body_bytes: int = 8 * 1024
    # Bodies of the other routes that are not uploads (JSON: speaker names...), held in memory. Default 1 MiB.
    max_body_bytes: int = 1024 * 1024
    # Job-events sockets are pinged this often; a client gone without closing is dropped when a ping
    # goes unanswered for as long. Default 20 s.
    ws_ping_s: float = 20.0
    # Reliability (README "Reliability"). A job whose worker was lost (lease expired, or no progress
    # for stall_s) this many times fails with worker_lost; a graceful hand-back does not count.
    max_attempts: int = 3
    # A queued job whose task message was sent longer ago than this is sent again (a lost message:
    # FLUSHALL, broker failover). None: three leases (3 x job_lease_s).
    resend_after_s: float | None = None
    # An attempt may run job_time_base_s plus job_time_factor[profile] seconds per second of audio;
    # past that the job fails with timeout. Factors not given default to 1.0.
    job_time_base_s: float = 600.0
    job_time_factor: Mapping[str, float] = field(default_factory=dict)
    # No decoder or model progress for this long ends the attempt (it counts as a lost worker).
    # Must exceed the slowest single model call (an ASR batch, punctuation of the whole text).
    stall_s: float = 300.0
    # How long a worker holds a finished result while the database is unreachable, retrying.
    db_retry_s: float = 3600.0
    # How long a worker waits out a media store it cannot read (retrying with backoff, the job
    # running with waiting_reason "media store unavailable") before the job fails store_unavailable.
    store_retry_s: float = 600.0
    # A worker claims a job only while its scratch has room for the job's decoded audio (about
    # 115 MB per audio hour) plus this many bytes. Default 256 MiB.
    scratch_margin_bytes: int = 256 * 1024**2
    # An upload spool file (work/uploads/*.part) no process has written for this long is removed.
    spool_max_age_s: float = 3600.0
    # Retention (core.retention), in days; None keeps for ever. A job's media (the upload, or the
    # copy of a fetched source) is deleted from the store this long after the job was accepted, once
    # the job has ended; a job may ask for less (``retain_media_days``), never more. A finished job
    # with its transcript is deleted this long after it ended.
    retain_media_days: float | None = None
    retain_transcript_days: float | None = None
    # Audio hours each tenant may submit per calendar month (UTC), by tenant; the key "*" applies to
    # tenants not listed. Empty: no quota. Past it, a submission is refused (429 quota_exceeded).
    tenant_quota_hours: Mapping[str, float] = field(default_factory=dict)
    # Links (source_url): hosts, addresses or CIDRs a worker may fetch from although they are
    # loopback, private or otherwise internal (the same rules as webhooks otherwise). Default none.
    fetch_allow: tuple[str, ...] = ()
    # A link that sends no byte for this long (connecting, or mid-body) fails the job fetch_failed.
    fetch_timeout_s: float = 30.0
    # Per tenant, the s3:// prefixes a job may name as source_url (read with the deployment's S3
    # credentials), and those output_url may deliver to: {"acme": ("s3://calls/acme/",)}.
    # TINGXIE_TENANT_SOURCES / TINGXIE_TENANT_OUTPUTS="acme=s3://calls/acme/,s3://b2;beta=s3://b3/in/".
    tenant_sources: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    tenant_outputs: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    # Profile options from TINGXIE_MODEL_<NAME>, keys lower-case ({"asr": "...", "beam_size": "3"});
    # each profile declares the keys it takes (pipeline.profiles), checked when a worker starts.
    profile_options: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        data_dir = Path(self.data_dir).expanduser().resolve()
        object.__setattr__(self, "data_dir", data_dir)
        if not self.database_url:
            object.__setattr__(self, "database_url", f"sqlite:///{data_dir / 'tingxie.db'}")
        if not self.broker_url:
            object.__setattr__(self, "broker_url", "filesystem://")
        if not self.events_url and self.broker_url.startswith(("redis://", "rediss://")):
            object.__setattr__(self, "events_url", self.broker_url)
        if self.model_dir is None:
            object.__setattr__(self, "model_dir", data_dir / "models")
        if self.scratch_dir is None:
            object.__setattr__(self, "scratch_dir", data_dir / "work")
        object.__setattr__(self, "scratch_dir", Path(self.scratch_dir).expanduser().resolve())
        object.__setattr__(self, "worker_profiles", tuple(self.worker_profiles))

    @property
    def served_profiles(self) -> tuple[str, ...]:
        """The profiles a worker started with these settings consumes."""
        return self.worker_profiles or (self.profile,)

    @property
    def object_storage(self) -> bool:
        return self.storage_url.startswith("s3://")

    @property
    def resend_bound_s(self) -> float:
        """How long a sent job may stay queued before its message counts as lost and is sent again."""
        return self.resend_after_s if self.resend_after_s is not None else 3 * self.job_lease_s

    def time_limit_s(self, profile: str, duration_ms: int | None) -> float:
        """The wall-clock limit of one attempt at a job: a base, plus the profile's factor per
        second of audio (the longest allowed duration when the probe could not tell)."""
        duration_s = duration_ms / 1000 if duration_ms is not None else self.max_duration_s
        return self.job_time_base_s + self.job_time_factor.get(profile, 1.0) * duration_s

    @property
    def embedded_broker(self) -> bool:
        return self.broker_url.startswith("filesystem://")

    @property
    def broker_dir(self) -> Path:
        return self.data_dir / "broker"

    @property
    def media_dir(self) -> Path:
        return self.data_dir / "media"

    @property
    def work_dir(self) -> Path:
        """Scratch space for decoded PCM, media copied from object storage and upload spooling."""
        return self.scratch_dir

    @property
    def cache_dir(self) -> Path:
        return self.data_dir / "cache"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "Settings":
        """Settings from ``TINGXIE_*`` variables; :class:`SettingsError` lists every bad one."""
        env = os.environ if env is None else env
        kwargs: dict = {}
        problems: list[str] = []
        for var in _VARIABLES:
            raw = env.get(ENV_PREFIX + var.name)
            if raw is None or raw == "":
                continue
            try:
                kwargs[var.attr] = var.parse(raw.strip())
            except ValueError as exc:
                problems.append(f"{ENV_PREFIX}{var.name}={raw!r}: {exc}")
        model_prefix = ENV_PREFIX + "MODEL_"
        kwargs["profile_options"] = {
            key[len(model_prefix):].lower(): value.strip()
            for key, value in env.items()
            if key.startswith(model_prefix) and key != model_prefix + "DIR" and value.strip()
        }
        known = {var.name for var in _VARIABLES} | set(CLIENT_VARIABLES)
        for key in sorted(env):
            if not key.startswith(ENV_PREFIX) or key.startswith(model_prefix):
                continue
            name = key[len(ENV_PREFIX):]
            if name not in known:
                guess = difflib.get_close_matches(name, sorted(known), n=1)
                hint = f"; did you mean {ENV_PREFIX}{guess[0]}?" if guess else ""
                problems.append(f"{key} is not a tingxie setting{hint} (see the README's configuration table)")
        if problems:
            raise SettingsError(problems)
        return cls(**kwargs)


    def to_env(self) -> dict[str, str]:
        """The ``TINGXIE_*`` variables that give these settings back through :meth:`from_env`
        (what a process started with them must be given: tests' services, a supervisor)."""
        env: dict[str, str] = {}
        for var in _VARIABLES:
            text = _format(getattr(self, var.attr), var.parse)
            if text:
                env[ENV_PREFIX + var.name] = text
        for name, value in self.profile_options.items():
            env[f"{ENV_PREFIX}MODEL_{name.upper()}"] = value
        return env


def _format(value: object, parse: Callable[[str], object]) -> str:
    """A setting's value as its variable's text ("" for unset): the inverse of its parser."""
    if value is None:
        return ""
    if parse is _mib:  # held in bytes, written in MiB or KiB
        return repr(value / 1024**2)
    if parse is _kib:
        return repr(value / 1024)
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float):
        return repr(value)
    if parse is _tenant_prefixes:
        return format_tenant_prefixes(value)
    if isinstance(value, dict):
        return ",".join(f"{key}={factor!r}" for key, factor in value.items())
    if isinstance(value, (tuple, list)):
        return ",".join(value)
    return str(value)


# --- Parsers: each turns a variable's text into a value or raises ValueError saying what is allowed.

def _positive(kind: Callable[[str], float | int], what: str, *, minimum: float = 0, inclusive: bool = False):
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise ValueError(f"expected {what}") from None
        if value != value or value in (float("inf"), float("-inf")) or value < minimum or (value == minimum and not inclusive):
            bound = f">= {minimum:g}" if inclusive else f"> {minimum:g}"
            raise ValueError(f"expected {what} {bound}")
        return value

    return parse


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise ValueError("expected a TCP port number (1-65535)") from None
    if not 1 <= port <= 65535:
        raise ValueError("expected a TCP port number (1-65535)")
    return port


_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


def _bool(text: str) -> bool:
    lowered = text.lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ValueError(f"expected one of {', '.join(_TRUE + _FALSE)}")


def _choice(*allowed: str):
    def parse(text: str) -> str:
        if text not in allowed:
            guess = difflib.get_close_matches(text, allowed, n=1)
            hint = f" (did you mean {guess[0]!r}?)" if guess else ""
            raise ValueError(f"expected one of {', '.join(allowed)}{hint}")
        return text

    return parse


_DEVICE = re.compile(r"^(cpu|cuda|cuda:\d+)$")


def _device(text: str) -> str:
    if not _DEVICE.match(text):
        raise ValueError("expected cpu, cuda or cuda:N (N the GPU's index)")
    return text


def _url(*schemes: str, example: str):
    def parse(text: str) -> str:
        scheme = text.split("://", 1)[0].lower() if "://" in text else ""
        if scheme.split("+", 1)[0] not in schemes:
            raise ValueError(f"expected a URL starting with {' or '.join(s + '://' for s in schemes)}, e.g. {example}")
        return text

    return parse


def parse_profiles(text: str) -> tuple[str, ...]:
    """A comma-separated list of profile names (TINGXIE_WORKER_PROFILES, ``tingxie worker --profiles``)."""
    names = tuple(dict.fromkeys(x.strip() for x in text.split(",") if x.strip()))
    if not names:
        raise ValueError(f"expected profile names separated by commas, from {', '.join(PROFILES)}")
    for name in names:
        _choice(*PROFILES)(name)
    return names


_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]$")


def _storage_url(text: str) -> str:
    if not text.startswith("s3://"):
        raise ValueError("expected s3://bucket or s3://bucket/prefix (leave it unset for the local data directory)")
    bucket = text[len("s3://"):].split("/", 1)[0]
    if not _BUCKET.match(bucket):
        raise ValueError(f"{bucket!r} is not an S3 bucket name (3-63 lower-case letters, digits, dots, hyphens)")
    return text.rstrip("/")


def _dir(text: str) -> Path:
    return Path(text).expanduser().resolve()


def _existing_file(text: str) -> Path:
    path = Path(text).expanduser().resolve()
    if not path.is_file():
        raise ValueError("no such file")
    return path


def _executable(text: str) -> str:
    if shutil.which(text) is None:
        raise ValueError("not an executable file (give the path of an ffmpeg binary)")
    return text


def _kib(text: str) -> int:
    return int(_positive(float, "a number of KiB")(text) * 1024)


def _mib(text: str) -> int:
    return int(_positive(float, "a number of MiB, e.g. 4096")(text) * 1024**2)


def _hosts(text: str) -> tuple[str, ...]:
    entries = tuple(x.strip() for x in text.split(",") if x.strip())
    for entry in entries:
        if "/" in entry:
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                raise ValueError(f"{entry!r} is not a CIDR range (e.g. 10.0.0.0/8)") from None
        elif not re.fullmatch(r"[A-Za-z0-9.:\-\[\]_]+", entry):
            raise ValueError(f"{entry!r} is not a host name, address or CIDR range")
    return entries


def _time_factors(text: str) -> dict[str, float]:
    """``1.5`` (every profile) or ``offline=2,funasr=0.5`` (seconds of work per second of audio)."""
    number = _positive(float, "a number of seconds per second of audio")
    if "=" not in text:
        return {profile: number(text) for profile in PROFILES}
    factors = {}
    for item in (x.strip() for x in text.split(",") if x.strip()):
        profile, _, value = item.partition("=")
        profile = profile.strip()
        if profile not in PROFILES:
            raise ValueError(f"{profile!r} is not a profile (expected {', '.join(PROFILES)}); "
                             "write e.g. offline=2,funasr=0.5 or one number for all")
        factors[profile] = number(value.strip())
    return factors


def _quota_hours(text: str) -> dict[str, float]:
    """``100`` (every tenant) or ``acme=50,globex=200,*=10`` (audio hours per calendar month)."""
    number = _positive(float, "a number of audio hours per month", inclusive=True)
    if "=" not in text:
        return {"*": number(text)}
    quotas = {}
    for item in (x.strip() for x in text.split(",") if x.strip()):
        tenant, _, value = item.partition("=")
        tenant = tenant.strip()
        quotas[tenant if tenant == "*" else tenant_name(tenant)] = number(value.strip())
    return quotas
def _tenant_prefixes(text: str) -> dict[str, tuple[str, ...]]:
    return parse_tenant_prefixes(text)


def _certfile(text: str) -> str:
    if text == "0":
        return text
    return str(_existing_file(text))


AUTH_MODES = ("auto", "required", "insecure-no-auth")
_RATE = re.compile(r"^\d+\s*(/|per)\s*(\d+\s*)?(second|minute|hour|day)s?$", re.IGNORECASE)


def _rate(text: str) -> str:
    if text.lower() == "off":
        return "off"
    parts = [p.strip() for p in re.split(r"[;,]", text) if p.strip()]
    if not parts or not all(_RATE.match(p) for p in parts):
        raise ValueError("expected limits like 1200/minute or 20/second;1000/hour, or off")
    return ";".join(parts)


def _origins(text: str) -> tuple[str, ...]:
    entries = tuple(x.strip().rstrip("/") for x in text.split(",") if x.strip())
    for entry in entries:
        if not re.fullmatch(r"https?://[A-Za-z0-9.\-\[\]:]+", entry):
            raise ValueError(f"{entry!r} is not an origin (scheme://host[:port], e.g. https://asr.example.com)")
    return tuple(e.lower() for e in entries)


@dataclass(frozen=True)
class _Var:
    name: str  # after TINGXIE_
    attr: str
    parse: Callable[[str], object]


_VARIABLES: tuple[_Var, ...] = (
    _Var("DATA_DIR", "data_dir", _dir),
    _Var("DATABASE_URL", "database_url", _url("sqlite", "postgresql", "postgres",
                                              example="postgresql+psycopg://user:pw@host/db")),
    _Var("BROKER_URL", "broker_url", _url("redis", "rediss", "filesystem", "amqp", "amqps",
                                          example="redis://host:6379/0")),
    _Var("EVENTS_URL", "events_url", _url("redis", "rediss", example="redis://host:6379/0")),
    _Var("PROFILE", "profile", _choice(*PROFILES)),
    _Var("WORKER_PROFILES", "worker_profiles", parse_profiles),
    _Var("MODEL_DIR", "model_dir", _dir),
    _Var("DEVICE", "device", _device),
    _Var("BATCH_SECONDS", "batch_seconds", _positive(float, "a number of seconds")),
    _Var("MAX_UPLOAD_MB", "max_upload_bytes", _mib),
    _Var("MAX_DURATION_S", "max_duration_s", _positive(float, "a number of seconds")),
    _Var("JOB_LEASE_S", "job_lease_s", _positive(float, "a number of seconds")),
    _Var("HOTWORD_FILE", "hotword_file", _existing_file),
    _Var("MAX_HOTWORDS", "max_hotwords", _positive(int, "a whole number")),
    _Var("HOST", "host", str),
    _Var("PORT", "port", _port),
    _Var("WEB_THREADS", "web_threads", _positive(int, "a whole number of threads")),
    _Var("GATEWAY_PORT", "gateway_port", _port),
    _Var("GATEWAY_CERTFILE", "gateway_certfile", _certfile),
    _Var("GATEWAY_KEYFILE", "gateway_keyfile", lambda text: str(_existing_file(text))),
    _Var("WEBHOOK_SECRET", "webhook_secret", str),
    _Var("WEBHOOK_ALLOW", "webhook_allow", _hosts),
    _Var("FFMPEG", "ffmpeg", _executable),
    _Var("PRELOAD_MODELS", "preload_models", _bool),
    _Var("WORKER_THREADS", "worker_threads", _positive(int, "a whole number of threads")),
    _Var("OPENAI_WAIT_S", "openai_wait_s", _positive(float, "a number of seconds")),
    _Var("NO_WORKER_S", "no_worker_s", _positive(float, "a number of seconds")),
    _Var("STORAGE_URL", "storage_url", _storage_url),
    _Var("S3_ENDPOINT_URL", "s3_endpoint_url", _url("http", "https", example="http://minio:9000")),
    _Var("S3_REGION", "s3_region", str),
    _Var("S3_ACCESS_KEY_ID", "s3_access_key_id", str),
    _Var("S3_SECRET_ACCESS_KEY", "s3_secret_access_key", str),
    _Var("S3_ADDRESSING_STYLE", "s3_addressing_style", _choice("auto", "path", "virtual")),
    _Var("SCRATCH_DIR", "scratch_dir", _dir),
    _Var("AUTH", "auth", _choice(*AUTH_MODES)),
    _Var("ALLOWED_ORIGINS", "allowed_origins", _origins),
    _Var("TRUSTED_PROXIES", "trusted_proxies", _positive(int, "a whole number of proxies", inclusive=True)),
    _Var("SESSION_HOURS", "session_hours", _positive(float, "a number of hours")),
    _Var("RATE_LIMIT", "rate_limit", _rate),
    _Var("UPLOAD_RATE_LIMIT", "upload_rate_limit", _rate),
    _Var("AUTH_FAIL_RATE_LIMIT", "auth_fail_rate_limit", _rate),
    _Var("TENANT_MAX_JOBS", "tenant_max_jobs", _positive(int, "a whole number of jobs")),
    _Var("TENANT_INFLIGHT", "tenant_inflight", _positive(int, "a whole number of jobs")),
    _Var("GATEWAY_TENANT", "gateway_tenant", tenant_name),
    _Var("GATEWAY_REQUIRE_TOKEN", "gateway_require_token", _bool),
    _Var("GATEWAY_ALLOW_FILE_PAGES", "gateway_allow_file_pages", _bool),
    _Var("REQUEST_IDLE_TIMEOUT_S", "request_idle_timeout_s", _positive(float, "a number of seconds")),
    _Var("BODY_MIN_RATE_KB_S", "body_min_rate_bytes_s", _kib),
    _Var("BODY_TIMEOUT_S", "body_timeout_s", _positive(float, "a number of seconds")),
    _Var("PUBLIC_BODY_KB", "public_body_bytes", _kib),
    _Var("MAX_BODY_KB", "max_body_bytes", _kib),
    _Var("WS_PING_S", "ws_ping_s", _positive(float, "a number of seconds")),
    _Var("MAX_ATTEMPTS", "max_attempts", _positive(int, "a whole number of attempts")),
    _Var("RESEND_AFTER_S", "resend_after_s", _positive(float, "a number of seconds")),
    _Var("JOB_TIME_BASE_S", "job_time_base_s", _positive(float, "a number of seconds")),
    _Var("JOB_TIME_FACTOR", "job_time_factor", _time_factors),
    _Var("STALL_S", "stall_s", _positive(float, "a number of seconds")),
    _Var("DB_RETRY_S", "db_retry_s", _positive(float, "a number of seconds")),
    _Var("STORE_RETRY_S", "store_retry_s", _positive(float, "a number of seconds")),
    _Var("SCRATCH_MARGIN_MB", "scratch_margin_bytes", _mib),
    _Var("SPOOL_MAX_AGE_S", "spool_max_age_s", _positive(float, "a number of seconds")),
    _Var("RETAIN_MEDIA_DAYS", "retain_media_days", _positive(float, "a number of days")),
    _Var("RETAIN_TRANSCRIPT_DAYS", "retain_transcript_days", _positive(float, "a number of days")),
    _Var("TENANT_QUOTA_HOURS", "tenant_quota_hours", _quota_hours),
    _Var("FETCH_ALLOW", "fetch_allow", _hosts),
    _Var("FETCH_TIMEOUT_S", "fetch_timeout_s", _positive(float, "a number of seconds")),
    _Var("TENANT_SOURCES", "tenant_sources", _tenant_prefixes),
    _Var("TENANT_OUTPUTS", "tenant_outputs", _tenant_prefixes),
)


@dataclass(frozen=True)
class ClientSettings:
    """What ``tingxie submit`` and ``tingxie jobs`` need to reach a running server: a client's
    settings, apart from the server's own (a client machine has no data directory)."""

    # Base URL of the tingxie web tier (TINGXIE_SERVER).
    server_url: str = "http://127.0.0.1:8000"
    # Sent as ``Authorization: Bearer <token>`` when set (TINGXIE_TOKEN).
    token: str = ""

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "ClientSettings":
        env = os.environ if env is None else env
        kwargs = {}
        if env.get(ENV_PREFIX + "SERVER"):
            kwargs["server_url"] = env[ENV_PREFIX + "SERVER"]
        if env.get(ENV_PREFIX + "TOKEN"):
            kwargs["token"] = env[ENV_PREFIX + "TOKEN"]
        return cls(**kwargs)
