"""Settings, read from the environment in exactly one place (:meth:`Settings.from_env`).

Tests build :class:`Settings` directly. Every field documents its unit and default; the
README's configuration table lists the same variables.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Mapping

ENV_PREFIX = "TINGXIE_"


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
    # Model profile used when a job names none: "offline" (faster-whisper) or "funasr".
    profile: str = "offline"
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
    # Server-wide hotword file, one "word weight" a line (FunASR's --hotword); merged with each job's.
    hotword_file: Path | None = None
    # Most hotwords one job may carry (after merging with the server-wide file).
    max_hotwords: int = 1000
    # Web tier bind address.
    host: str = "127.0.0.1"
    port: int = 8000
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
    # Extra profile options (model ids or directories), e.g. {"asr_model": "...", "vad_model": "..."}.
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
        """Scratch space for decoded PCM and upload spooling (same filesystem as media_dir)."""
        return self.data_dir / "work"

    @property
    def cache_dir(self) -> Path:
        return self.data_dir / "cache"

    def with_(self, **changes) -> "Settings":
        return replace(self, **changes)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "Settings":
        env = os.environ if env is None else env

        def get(name: str, default=None):
            value = env.get(ENV_PREFIX + name)
            return default if value in (None, "") else value

        kwargs: dict = {}
        text_fields = {
            "DATABASE_URL": "database_url",
            "BROKER_URL": "broker_url",
            "EVENTS_URL": "events_url",
            "PROFILE": "profile",
            "DEVICE": "device",
            "HOST": "host",
            "GATEWAY_CERTFILE": "gateway_certfile",
            "GATEWAY_KEYFILE": "gateway_keyfile",
            "WEBHOOK_SECRET": "webhook_secret",
            "FFMPEG": "ffmpeg",
        }
        for var, attr in text_fields.items():
            if get(var) is not None:
                kwargs[attr] = get(var)
        if get("DATA_DIR"):
            kwargs["data_dir"] = Path(get("DATA_DIR"))
        if get("MODEL_DIR"):
            kwargs["model_dir"] = Path(get("MODEL_DIR")).expanduser().resolve()
        if get("HOTWORD_FILE"):
            kwargs["hotword_file"] = Path(get("HOTWORD_FILE")).expanduser().resolve()
        for var, attr, conv in (
            ("BATCH_SECONDS", "batch_seconds", float),
            ("MAX_DURATION_S", "max_duration_s", float),
            ("JOB_LEASE_S", "job_lease_s", float),
            ("MAX_HOTWORDS", "max_hotwords", int),
            ("PORT", "port", int),
            ("GATEWAY_PORT", "gateway_port", int),
            ("WORKER_THREADS", "worker_threads", int),
        ):
            if get(var) is not None:
                kwargs[attr] = conv(get(var))
        if get("MAX_UPLOAD_MB") is not None:
            kwargs["max_upload_bytes"] = int(float(get("MAX_UPLOAD_MB")) * 1024**2)
        if get("WEBHOOK_ALLOW") is not None:
            kwargs["webhook_allow"] = tuple(x.strip() for x in get("WEBHOOK_ALLOW").split(",") if x.strip())
        if get("PRELOAD_MODELS") is not None:
            kwargs["preload_models"] = get("PRELOAD_MODELS").lower() not in ("0", "false", "no", "off")
        # TINGXIE_MODEL_<NAME>=id-or-dir -> profile_options["<name>"]
        kwargs["profile_options"] = {
            key[len(ENV_PREFIX + "MODEL_"):].lower(): value
            for key, value in env.items()
            if key.startswith(ENV_PREFIX + "MODEL_") and key != ENV_PREFIX + "MODEL_DIR" and value
        }
        return cls(**kwargs)


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
