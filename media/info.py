"""What a probe found, as a value a job can store and a worker can decode from without probing again."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields


@dataclass(frozen=True)
class MediaInfo:
    """A media file's first audio stream and its container.

    duration_ms: the length the container declares, None when it does not say (raw ADTS, some
        live captures). format_name: the demuxer ffmpeg chose, as ``-f`` names it ("mov" for the
        mp4/m4a/3gp family, "matroska" for webm); always on the allowlist. audio_codec: ffmpeg's
        codec name ("mp3", "aac", "opus"). channels: a count. has_video: a video stream other than
        cover art. mime_type: the type to serve the file as, from the probe, never from the name.
    """

    duration_ms: int | None
    format_name: str
    audio_codec: str
    sample_rate_hz: int | None
    channels: int | None
    has_video: bool
    mime_type: str

    def __post_init__(self):
        # Values come back from a database or another process: refuse anything malformed here
        # rather than pass it to ffmpeg's command line later.
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in ("duration_ms", "sample_rate_hz", "channels"):
                ok = value is None or (type(value) is int and value >= 0)
            elif f.name == "has_video":
                ok = type(value) is bool
            else:
                ok = isinstance(value, str) and value != "" and "\n" not in value
            if not ok:
                raise ValueError(f"MediaInfo.{f.name} cannot be {value!r}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "MediaInfo":
        names = {f.name for f in fields(cls)}
        if not isinstance(data, dict) or set(data) != names:
            raise ValueError(f"a stored MediaInfo needs exactly the keys {sorted(names)}")
        return cls(**data)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "MediaInfo":
        return cls.from_dict(json.loads(text))
