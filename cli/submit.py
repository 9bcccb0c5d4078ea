"""``tingxie submit FILE...`` (or ``--url URL``): send files, or links the server fetches, to a
running tingxie server, and with ``--wait`` follow
each job live and write its transcript, as ``tingxie transcribe`` does without a server.

Exit status (the README's): 0 every file done (without --wait: accepted); 1 a file failed (refused
at upload, or its job failed or was canceled: the error code is printed); 2 usage error; 3 the
server could not be reached, failed (5xx) or is not tingxie; 130 interrupted (the jobs go on).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from cli.outcomes import FAILED, INTERRUPTED, OK, UNREACHABLE, USAGE  # noqa: F401 (its callers read them here)


def add_client_arguments(parser: argparse.ArgumentParser) -> None:
    """--server and --token, shared by ``submit`` and ``jobs``; defaults come from the environment."""
    parser.add_argument("--server", metavar="URL",
                        help="the tingxie server (default: TINGXIE_SERVER, else http://127.0.0.1:8000)")
    parser.add_argument("--token", help="sent as 'Authorization: Bearer TOKEN' (default: TINGXIE_TOKEN)")


def make_client(args: argparse.Namespace):
    from cli.client import Client
    from core.settings import ClientSettings

    settings = ClientSettings.from_env()
    return Client(args.server or settings.server_url, args.token or settings.token)


def add_parser(subparsers) -> argparse.ArgumentParser:
    from cli.client import FORMATS

    parser = subparsers.add_parser(
        "submit",
        help="send files to a running tingxie server (--wait: follow them and write the transcripts)",
        description="Upload audio or video files to a tingxie server as jobs. Without --wait the job ids "
        "are printed, one a line. With --wait each job is followed live and its transcript written: to "
        "stdout for one file without -o, else FILE-stem.FORMAT into -o DIR.",
    )
    parser.add_argument("files", nargs="*", metavar="FILE",
                        help="audio or video files ffmpeg can read; a folder sends every file under it as one batch")
    parser.add_argument("--from", dest="from_file", metavar="LIST",
                        help="send the files or links listed in LIST (one a line) as one batch; with folders, or with "
                        "this, one progress bar covers every file, and running the same command again after Ctrl-C "
                        "resumes the batch without sending a file twice")
    parser.add_argument("--url", action="append", default=[], metavar="URL", dest="urls",
                        help="a link the server's worker fetches instead of a file: http(s)://... or "
                        "s3://bucket/key (the deployment says which buckets); repeat for several")
    add_client_arguments(parser)
    parser.add_argument("--wait", action="store_true", help="follow each job to its end and write its transcript")
    parser.add_argument("--format", choices=FORMATS, default="txt", help="transcript format with --wait (default txt)")
    parser.add_argument("-o", "--output-dir", metavar="DIR", help="with --wait: write FILE-stem.FORMAT here")
    parser.add_argument("--language", metavar="CODE",
                        help="auto (the default) or a code the profile serves (GET /api/v1/profiles lists them)")
    parser.add_argument(
        "--hotwords", metavar="WORDS",
        help="phrases to favour: 'word1,word2', FunASR's 'word weight' lines, JSON, or @FILE to read them from",
    )
    parser.add_argument("--no-itn", action="store_true", help="keep numbers as spoken ('一百二十三', 'twenty three')")
    parser.add_argument("--profile", help="model profile (default: the server's)")
    parser.add_argument("--callback-url", metavar="URL", help="the server POSTs the job's summary here when it ends")
    parser.add_argument("--output-url", metavar="S3URL",
                        help="s3://bucket/prefix/ the server writes each transcript to when its job is done")
    parser.add_argument("--output-formats", metavar="FORMATS", help="what --output-url receives: json (default), "
                        "txt, srt, vtt, comma-separated")
    speakers = parser.add_argument_group("speakers", "label who speaks each sentence (S1, S2...)")
    speakers.add_argument("--diarize", action="store_true", help="label speakers (off by default)")
    speakers.add_argument("--num-speakers", type=int, metavar="N", help="there are exactly N speakers (implies --diarize)")
    speakers.add_argument("--min-speakers", type=int, metavar="A", help="at least A speakers (implies --diarize)")
    speakers.add_argument("--max-speakers", type=int, metavar="B", help="at most B speakers (implies --diarize)")
    channels = parser.add_argument_group("channels", "call recordings: each channel on its own (C0, C1...)")
    channels.add_argument("--channels", choices=("mix", "separate"),
                          help="separate: transcribe each channel apart and merge by time (default: mix them)")
    channels.add_argument("--channel-names", metavar="NAMES",
                          help="with --channels separate: the channels' names in order, e.g. agent,customer")
    parser.add_argument("--json", action="store_true",
                        help="print a JSON array describing each file's job on stdout (with --wait, needs -o)")
    parser.add_argument("--progress", choices=("bar", "json", "none"), default="bar",
                        help="bar: progress bars on stderr when it is a terminal (default); json: one JSON "
                        "object a line on stderr, for scripts; none")
    return parser


@dataclass
class _Item:
    """One file on its way: its job and what became of it."""

    path: Path  # the file; for a link, its display name
    url: str | None = None
    job_id: str | None = None
    status: str | None = None
    error: dict | None = None
    output: str | None = None
    warnings: list = field(default_factory=list)

    def succeeded(self, waited: bool) -> bool:
        return self.status == "done" if waited else self.job_id is not None

    def as_json(self) -> dict:
        return {"file": None if self.url else str(self.path), "url": self.url, "id": self.job_id, "status": self.status, "error": self.error,
                "output": self.output, "warnings": self.warnings}


class _Reporter:
    """What a person (bars, plain lines) or a script (``--progress json``) sees on stderr."""

    def __init__(self, mode: str, stream: TextIO):
        self.mode, self.stream = mode, stream
        self._bar = None
        self._sent_shown = -1.0

    def _emit(self, **event) -> None:
        self.stream.write(json.dumps(event, ensure_ascii=False) + "\n")
        self.stream.flush()

    def upload(self, item: _Item, sent: int, total: int) -> None:
        if self.mode == "bar":
            from cli.progress import UploadBar

            if self._bar is None:
                self._bar = UploadBar(item.path.name, file=self.stream)
            self._bar.update(sent, total)
        elif self.mode == "json":
            # A line per percent (and the last), not one per 8 KiB read.
            if sent != self._sent_shown and (sent >= total or sent - self._sent_shown >= total / 100):
                self._sent_shown = sent
                self._emit(event="upload", file=str(item.path), sent_bytes=sent, total_bytes=total)

    def job(self, item: _Item, update) -> None:
        if self.mode == "bar":
            from cli.progress import StageBar

            if self._bar is None:
                self._bar = StageBar(item.path.name, file=self.stream)
            self._bar.update(update.stage or update.status, update.progress)
        elif self.mode == "json":
            self._emit(event="job", file=str(item.path), job_id=update.job_id, status=update.status,
                       stage=update.stage, progress=update.progress, error=update.error)

    def end(self) -> None:
        """The current bar is finished."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        self._sent_shown = -1.0

    def say(self, item: _Item, kind: str, message: str, code: str | None = None) -> None:
        """An error, a warning or where a transcript went: a line for a person, an object for a script."""
        self.end()
        if self.mode == "json":
            self._emit(event=kind, file=str(item.path), job_id=item.job_id, code=code, message=message)
            return
        if kind == "output":
            line = f"{item.path} -> {message}"
        else:
            # The API's messages about a file start with its name; the path said so already.
            message = message.removeprefix(f"{item.path.name}: ")
            line = f"{item.path}: {'warning: ' if kind == 'warning' else ''}{message}{f' [{code}]' if code else ''}"
        self.stream.write(line + "\n")
        self.stream.flush()


def is_batch(args) -> bool:
    return bool(args.from_file) or any(Path(f).is_dir() for f in args.files)


def _check_usage(args) -> str | None:
    if not args.files and not args.from_file and not args.urls:
        return "name the files or folders to send, links with --url, or --from LIST"
    if is_batch(args):
        if args.urls:
            return "--url is for single jobs; put links in the --from LIST of a batch"
        return "--json is not for batches: the batch's id is printed" if args.json else None
    if args.wait and args.output_dir is None and len(args.files) + len(args.urls) > 1:
        return "several files need -o DIR to write their transcripts into"
    if args.wait and args.json and args.output_dir is None:
        return "--json with --wait needs -o DIR (stdout carries the JSON)"
    if not args.wait and args.output_dir is not None:
        return "-o DIR is where --wait writes transcripts; add --wait"
    return None


def _hotwords(value: str | None) -> str | None:
    """The text to send, read from @FILE; parsed here too so a mistake is a usage error before any upload."""
    from core.hotwords import parse_hotwords

    if not value:
        return None
    if value.startswith("@"):
        value = Path(value[1:]).expanduser().read_text(encoding="utf-8")
    parse_hotwords(value)
    return value


def run(args: argparse.Namespace) -> int:
    from cli.client import ClientError, ServerError
    from core.hotwords import HotwordError

    problem = _check_usage(args)
    if problem is None:
        try:
            hotwords = _hotwords(args.hotwords)
        except (HotwordError, OSError) as exc:
            problem = f"bad --hotwords: {exc}"
    if problem is None:
        try:
            client = make_client(args)
        except ClientError as exc:
            problem = exc.message
    if problem is not None:
        print(f"tingxie submit: {problem}", file=sys.stderr)
        return USAGE

    if is_batch(args):
        from cli import batch

        options = {"language": args.language, "hotwords": hotwords, "itn": False if args.no_itn else None,
                   "profile": args.profile, "callback_url": args.callback_url,
                   "diarize": True if args.diarize else None, "num_speakers": args.num_speakers,
                   "min_speakers": args.min_speakers, "max_speakers": args.max_speakers,
                   "channels": args.channels, "channel_names": args.channel_names}
        with client:
            return batch.run(args, client, options)

    reporter = _Reporter(args.progress, sys.stderr)
    from core.sources import display_name

    items = [_Item(Path(f)) for f in args.files]
    items += [_Item(Path(display_name(url) or "link"), url=url) for url in args.urls]
    out_dir = Path(args.output_dir) if args.output_dir else None
    status, ids_printed = OK, False
    try:
        with client:
            for item in items:
                _upload(client, item, args, hotwords, reporter)
            if not args.json and not args.wait:
                for item in items:
                    if item.job_id:
                        print(item.job_id, flush=True)
                ids_printed = True
            if args.wait:
                if out_dir is not None:
                    out_dir.mkdir(parents=True, exist_ok=True)
                for item in items:
                    if item.job_id:
                        _follow(client, item, args.format, out_dir, reporter)
    except ServerError as exc:
        reporter.end()
        print(f"tingxie submit: {exc.message}", file=sys.stderr)
        status = UNREACHABLE
    except KeyboardInterrupt:
        reporter.end()
        print("tingxie submit: interrupted; the jobs submitted go on on the server", file=sys.stderr)
        status = INTERRUPTED
    finally:
        reporter.end()
    if status == OK and any(not item.succeeded(args.wait) for item in items):
        status = FAILED
    if args.json:
        json.dump([item.as_json() for item in items], sys.stdout, ensure_ascii=False, indent=2)
        sys.stdout.write("\n")
    elif status in (UNREACHABLE, INTERRUPTED) and not ids_printed:
        for item in items:
            if item.job_id:
                print(f"tingxie submit: {item.path}: job {item.job_id} is {item.status}", file=sys.stderr)
    return status


def _upload(client, item: _Item, args, hotwords: str | None, reporter: _Reporter) -> None:
    from cli.client import ApiError

    if item.url is None and not item.path.is_file():
        item.status, item.error = "refused", {"code": "no_file", "message": "no such file"}
        reporter.say(item, "error", "no such file", "no_file")
        return
    options = dict(language=args.language, hotwords=hotwords, itn=False if args.no_itn else None,
                   profile=args.profile, callback_url=args.callback_url, diarize=True if args.diarize else None,
                   num_speakers=args.num_speakers, min_speakers=args.min_speakers, max_speakers=args.max_speakers,
                   output_url=args.output_url, output_formats=args.output_formats, channels=args.channels,
                   channel_names=args.channel_names)
    try:
        if item.url is not None:
            job = client.submit_link(item.url, **options)
        else:
            job = client.submit(item.path, on_upload=lambda sent, total: reporter.upload(item, sent, total), **options)
    except ApiError as exc:
        item.status, item.error = "refused", {"code": exc.code, "message": exc.message}
        reporter.say(item, "error", exc.message, exc.code)
        return
    except OSError as exc:  # the file could not be read while it was sent
        item.status, item.error = "refused", {"code": "unreadable", "message": str(exc)}
        reporter.say(item, "error", str(exc), "unreadable")
        return
    reporter.end()
    item.job_id, item.status = job["id"], job["status"]


def _follow(client, item: _Item, fmt: str, out_dir: Path | None, reporter: _Reporter) -> None:
    from cli.client import ApiError

    try:
        _wait_and_write(client, item, fmt, out_dir, reporter)
    except ApiError as exc:  # e.g. someone deleted the job meanwhile
        item.status, item.error = "failed", {"code": exc.code, "message": exc.message}
        reporter.say(item, "error", exc.message, exc.code)


def _wait_and_write(client, item: _Item, fmt: str, out_dir: Path | None, reporter: _Reporter) -> None:
    def seen(update) -> None:
        item.status = update.status
        reporter.job(item, update)

    job = client.wait(item.job_id, on_update=seen)
    reporter.end()
    item.status, item.error, item.warnings = job["status"], job.get("error"), job.get("warnings") or []
    for warning in item.warnings:
        reporter.say(item, "warning", warning)
    if item.status == "failed":
        error = item.error or {"code": "failed", "message": "the job failed"}
        reporter.say(item, "error", f"job {item.job_id} failed: {error['message']}", error["code"])
        return
    if item.status == "canceled":
        reporter.say(item, "error", f"job {item.job_id} was canceled", "canceled")
        return
    text = client.transcript(item.job_id, fmt)
    if out_dir is None:
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    target = out_dir / f"{item.path.stem}.{fmt}"
    tmp = target.with_name(f".{target.name}.{time.monotonic_ns()}.part")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(target)
    item.output = str(target)
    reporter.say(item, "output", str(target))
