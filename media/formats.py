"""Which of ffmpeg's demuxers tingxie lets read a file, and the content type each one is served as.

The allowlist holds demuxers of self-contained media files only. Anything that makes ffmpeg open
another file or a URL (HLS/m3u8 playlists, DASH manifests, concat scripts, SDP, RTSP), an image
sequence (image2 and the *_pipe image demuxers), subtitles, ffmetadata, lavfi graphs, tty text and
raw streams that must be named with ``-f`` are left out, so ffmpeg refuses them whatever the file
is called. The mov demuxer's external references stay off (``enable_drefs`` defaults to 0 in
every ffmpeg since 3.3), and the ``file`` protocol is the only one allowed.
"""
from __future__ import annotations

# Names as ffmpeg's demuxers call themselves (the first word of `ffmpeg -formats`); "mov" covers
# mp4/m4a/3gp/3g2/mj2, "matroska" covers webm, "asf" covers wma/wmv.
ALLOWED_DEMUXERS: tuple[str, ...] = (
    # common audio
    "mp3", "wav", "w64", "flac", "ogg", "aac", "ac3", "eac3", "dts", "aiff", "caf", "au", "amr", "amrnb",
    "amrwb", "wv", "ape", "tta", "tak", "mpc", "mpc8", "gsm", "voc", "xwma", "dsf", "truehd", "mlp",
    # containers that may also hold video (their first audio stream is what is transcribed)
    "mov", "matroska", "asf", "avi", "flv", "mpegts", "mpeg", "rm",
)

# What each refused demuxer is, in words a person knows (the rest are "a <name> file").
_REFUSED_KINDS = {
    "hls": "an HLS playlist (m3u8)",
    "applehttp": "an HLS playlist (m3u8)",
    "dash": "a DASH manifest",
    "webm_dash_manifest": "a DASH manifest",
    "concat": "an ffmpeg concat script",
    "sdp": "an SDP session description",
    "rtsp": "an RTSP description",
    "ffmetadata": "an ffmpeg metadata file",
    "lavfi": "an ffmpeg filter graph",
    "tty": "a text file",
    "image2": "an image or image sequence",
    "srt": "a subtitle file",
    "webvtt": "a subtitle file",
    "ass": "a subtitle file",
    "microdvd": "a subtitle file",
    "subviewer": "a subtitle file",
    "subviewer1": "a subtitle file",
    "sami": "a subtitle file",
    "lrc": "a lyrics file",
}


def demuxer_name(format_name: str) -> str:
    """The name ``-f`` accepts for a demuxer ffmpeg reports by its full name list
    (``"mov,mp4,m4a,3gp,3g2,mj2"`` -> ``"mov"``)."""
    return format_name.split(",", 1)[0].strip()


def is_allowed(format_name: str) -> bool:
    return demuxer_name(format_name) in ALLOWED_DEMUXERS


def refused_kind(format_name: str) -> str:
    """``format_name`` (a demuxer ffmpeg chose, not on the allowlist) in words: "an HLS playlist (m3u8)"."""
    name = demuxer_name(format_name)
    if name in _REFUSED_KINDS:
        return _REFUSED_KINDS[name]
    if name.endswith("_pipe"):  # png_pipe, jpeg_pipe, webp_pipe, ...: a single image
        return "an image"
    return f"a {name} file"


_AUDIO_TYPES = {
    "mp3": "audio/mpeg",
    "wav": "audio/wav",
    "flac": "audio/flac",
    "aac": "audio/aac",
    "ac3": "audio/ac3",
    "eac3": "audio/eac3",
    "dts": "audio/vnd.dts",
    "aiff": "audio/aiff",
    "caf": "audio/x-caf",
    "au": "audio/basic",
    "amr": "audio/amr",
    "amrnb": "audio/amr",
    "amrwb": "audio/amr-wb",
    "wv": "audio/x-wavpack",
    "mpc": "audio/x-musepack",
    "mpc8": "audio/x-musepack",
}
_CONTAINER_TYPES = {  # demuxer: (type when it holds video, type when audio only)
    "ogg": ("video/ogg", "audio/ogg"),
    "asf": ("video/x-ms-wmv", "audio/x-ms-wma"),
    "avi": ("video/x-msvideo", "video/x-msvideo"),
    "flv": ("video/x-flv", "video/x-flv"),
    "mpegts": ("video/mp2t", "video/mp2t"),
    "mpeg": ("video/mpeg", "video/mpeg"),
    "rm": ("application/vnd.rn-realmedia", "application/vnd.rn-realmedia"),
}
_WEBM_CODECS = {"vp8", "vp9", "av1", "opus", "vorbis"}
OCTET_STREAM = "application/octet-stream"


def mime_type(format_name: str, *, has_video: bool, codecs: set[str], brand: str = "") -> str:
    """The content type to serve a probed file as: derived from the demuxer ffmpeg chose and the
    streams it found, never from the file's name. ``application/octet-stream`` when there is no
    well-known type (w64, ape, tta...). Every other answer is ``audio/*``, ``video/*`` or a
    RealMedia type, so a browser never renders an upload as a page."""
    name = demuxer_name(format_name)
    if name == "mov":
        brand = brand.strip().lower()
        if brand == "qt":
            return "video/quicktime"
        if brand.startswith("3g"):
            return "video/3gpp" if has_video else "audio/3gpp"
        return "video/mp4" if has_video else "audio/mp4"
    if name == "matroska":
        webm = codecs <= _WEBM_CODECS
        if has_video:
            return "video/webm" if webm else "video/x-matroska"
        return "audio/webm" if webm else "audio/x-matroska"
    if name in _CONTAINER_TYPES:
        with_video, audio_only = _CONTAINER_TYPES[name]
        return with_video if has_video else audio_only
    return _AUDIO_TYPES.get(name, OCTET_STREAM)
