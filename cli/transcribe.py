"""``tingxie transcribe FILE...``: run the pipeline in this process, no service needed.

Settings (model and cache directories, device, ffmpeg, duration cap) come from the same
environment the service reads, so the CLI reuses the service's joined model files.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from core.languages import AUTO

FORMATS = ("json", "txt", "srt", "vtt")


def _all_languages() -> tuple[str, ...]:
    """Every code some profile takes; the chosen profile's own list is checked once it is known."""
    from core.languages import languages_for

    codes: dict[str, None] = {}
    for profile in ("offline", "funasr"):
        codes.update(dict.fromkeys(languages_for(profile)))
    return tuple(codes)


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "transcribe",
        help="transcribe media files here and now (no service)",
        description="Transcribe audio or video files with a local model profile. With one file and no "
        "-o the transcript goes to stdout; otherwise FILE-stem.FORMAT is written into -o DIR.",
    )
    parser.add_argument("files", nargs="+", metavar="FILE", help="audio or video files ffmpeg can read")
    parser.add_argument("--format", choices=FORMATS, default="txt", help="output format (default txt)")
    parser.add_argument(
        "--hotwords",
        metavar="WORDS",
        help="phrases to favour: 'word1,word2', FunASR's 'word weight' lines, JSON, or @FILE to read them from",
    )
    parser.add_argument(
        "--language", default=AUTO, type=str.lower, choices=_all_languages(), metavar="CODE",
        help="auto (the default: detected per segment) or an ISO 639-1 code: every language Whisper knows on the "
        "offline profile (zh, en, ja, fr, de, es, ko, ru, ...), zh or en on funasr",
    )
    parser.add_argument("--no-itn", action="store_true", help="keep numbers as spoken ('一百二十三', 'twenty three')")
    parser.add_argument("-o", "--output-dir", metavar="DIR", help="write FILE-stem.FORMAT here")
    subtitles = parser.add_argument_group("subtitle cues (srt, vtt)")
    subtitles.add_argument("--max-line-chars", type=int, metavar="N",
                           help="characters a line (default: 42 for Latin script, 16 for Chinese/Japanese/Korean)")
    subtitles.add_argument("--max-lines", type=int, default=2, metavar="N", help="lines a cue (default 2)")
    subtitles.add_argument("--max-cue-s", type=float, default=7.0, metavar="SECONDS",
                           help="longest time a cue stays up (default 7)")
    parser.add_argument("--profile", help="model profile (default: TINGXIE_PROFILE, else offline)")
    speakers = parser.add_argument_group(
        "speakers", "label who speaks each sentence (S1, S2...); on the offline profile this needs "
        "pip install 'tingxie[diarize]'"
    )
    speakers.add_argument("--diarize", action="store_true", help="label speakers (off by default)")
    speakers.add_argument("--num-speakers", type=int, metavar="N", help="there are exactly N speakers (implies --diarize)")
    speakers.add_argument("--min-speakers", type=int, metavar="A", help="at least A speakers (implies --diarize)")
    speakers.add_argument("--max-speakers", type=int, metavar="B", help="at most B speakers (implies --diarize)")
    channels = parser.add_argument_group("channels", "call recordings: each channel on its own (C0, C1...)")
    channels.add_argument("--channels", choices=("mix", "separate"), default="mix",
                          help="separate: transcribe each channel apart and merge by time (default: mix them)")
    channels.add_argument("--channel-names", metavar="NAMES",
                          help="with --channels separate: the channels' names in order, e.g. agent,customer")
    return parser


def _options(args: argparse.Namespace, settings):
    """The flags as a job's options, checked as every door checks them (core.submit.resolve_options)."""
    from core.hotwords import parse_hotwords
    from core.options import JobOptions, parse_channel_names, speaker_fields
    from core.submit import resolve_options

    hotwords = args.hotwords or ""
    if hotwords.startswith("@"):
        hotwords = Path(hotwords[1:]).expanduser().read_text(encoding="utf-8")
    speakers = speaker_fields(args.diarize or None, args.num_speakers, args.min_speakers, args.max_speakers)
    options = JobOptions(language=args.language, itn=not args.no_itn, hotwords=parse_hotwords(hotwords),
                         profile=args.profile, channels=args.channels,
                         channel_names=parse_channel_names(args.channel_names), **speakers)
    return resolve_options(settings, options)


def run(args: argparse.Namespace) -> int:
    from cli.progress import StageBar
    from core.errors import TingxieError
    from core.export import SubtitleLimits, render
    from core.settings import Settings
    from pipeline import transcribe
    from pipeline.errors import MediaError, PipelineError
    from worker.engines import load_engine_for, transcribe_options

    files = [Path(f) for f in args.files]
    out_dir = Path(args.output_dir) if args.output_dir else None
    if out_dir is None and len(files) > 1:
        print("tingxie transcribe: several files need -o DIR to write their transcripts into", file=sys.stderr)
        return 2
    settings = Settings.from_env()
    try:
        limits = SubtitleLimits(max_line_chars=args.max_line_chars, max_lines=args.max_lines, max_cue_s=args.max_cue_s)
        job_options = _options(args, settings)
    except OSError as exc:
        print(f"tingxie transcribe: bad --hotwords: {exc}", file=sys.stderr)
        return 2
    except TingxieError as exc:
        print(f"tingxie transcribe: {exc.message}", file=sys.stderr)
        return 2
    options = transcribe_options(job_options)
    try:
        engine = load_engine_for(settings, job_options.profile)
        if options.diarize:
            engine.speaker_model()  # loads it now: a missing package or model is said once, before any file
    except PipelineError as exc:
        print(f"tingxie transcribe: {exc.message}", file=sys.stderr)
        return 1
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)

    failures = 0
    for path in files:
        try:
            with StageBar(path.name) as bar, tempfile.TemporaryDirectory(prefix="tingxie-") as work_dir:
                transcript = transcribe(
                    path, options, engine, work_dir=Path(work_dir),
                    on_progress=lambda p: bar.update(p.stage, p.fraction),
                    max_duration_ms=int(settings.max_duration_s * 1000), ffmpeg=settings.ffmpeg or None,
                )
                bar.update("done", 1.0)
        except MediaError as exc:
            print(f"{path}: {exc.message} [{exc.code}]", file=sys.stderr)
            failures += 1
            continue
        for warning in transcript.warnings:
            print(f"{path}: warning: {warning}", file=sys.stderr)
        rendered = render(transcript, args.format, limits)
        if out_dir is None:
            sys.stdout.write(rendered)
            sys.stdout.flush()
        else:
            target = out_dir / f"{path.stem}.{args.format}"
            target.write_text(rendered, encoding="utf-8")
            print(f"{path} -> {target}", file=sys.stderr)
    return 1 if failures else 0
