"""``tingxie jobs list | get | cancel``: the jobs of a running tingxie server, as tables for a
person or JSON (``--json``) for a script. Exit status as ``tingxie submit``: 1 when the server
refused (no such job, nothing to cancel: the code is printed), 3 when it could not be reached."""
from __future__ import annotations

import argparse
import json
import sys

from cli.submit import FAILED, OK, UNREACHABLE, USAGE, add_client_arguments, make_client

STATUSES = ("queued", "running", "done", "failed", "canceled")


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser("jobs", help="list, show or cancel the jobs of a running tingxie server")
    sub = parser.add_subparsers(dest="jobs_command", required=True)

    listing = sub.add_parser("list", help="jobs, newest first, a page at a time")
    listing.add_argument("--status", choices=STATUSES, help="only jobs in this state")
    listing.add_argument("--page", type=int, default=1, help="page number, from 1 (default 1)")
    listing.add_argument("--per-page", type=int, default=20, help="jobs a page, 1 to 100 (default 20)")

    get = sub.add_parser("get", help="one job: state, progress, error, options, times")
    get.add_argument("job_id", metavar="ID")

    cancel = sub.add_parser("cancel", help="cancel a queued or running job (a finished one is left as it is)")
    cancel.add_argument("job_id", metavar="ID")

    for command in (listing, get, cancel):
        add_client_arguments(command)
        command.add_argument("--json", action="store_true", help="the API's JSON on stdout")
    return parser


def run(args: argparse.Namespace) -> int:
    from cli.client import ApiError, ClientError, ServerError

    try:
        client = make_client(args)
    except ClientError as exc:
        print(f"tingxie jobs: {exc.message}", file=sys.stderr)
        return USAGE
    try:
        with client:
            if args.jobs_command == "list":
                result = client.list(status=args.status, page=args.page, per_page=args.per_page)
                text = _table(result)
            elif args.jobs_command == "get":
                result = client.get(args.job_id)
                text = _details(result)
            else:
                result = client.cancel(args.job_id)
                text = f"{result['id']} {result['status']}\n"
    except ApiError as exc:
        print(f"tingxie jobs {args.jobs_command}: {exc.message} [{exc.code}]", file=sys.stderr)
        return FAILED
    except ServerError as exc:
        print(f"tingxie jobs {args.jobs_command}: {exc.message}", file=sys.stderr)
        return UNREACHABLE
    if args.json:
        text = json.dumps(result, ensure_ascii=False, indent=2) + "\n"
    sys.stdout.write(text)
    return OK


def _clock(ms: int | None) -> str:
    if ms is None:
        return "-"
    minutes, seconds = divmod(round(ms / 1000), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes}:{seconds:02d}"


def _when(iso: str | None) -> str:
    """An ISO time as 'YYYY-MM-DD HH:MM:SS' in the local time zone."""
    from datetime import datetime

    if not iso:
        return "-"
    return datetime.fromisoformat(iso).astimezone().strftime("%Y-%m-%d %H:%M:%S")


def _state(job: dict) -> str:
    if job["status"] == "running":
        return f"{job.get('stage') or 'running'} {job['progress'] * 100:.0f}%"
    if job["status"] == "failed" and job.get("error"):
        return f"failed ({job['error']['code']})"
    return job["status"]


def _table(page: dict) -> str:
    rows = [("ID", "STATE", "LENGTH", "CREATED", "FILE")]
    rows += [(j["id"], _state(j), _clock(j.get("duration_ms")), _when(j.get("created_at")), j.get("filename") or "")
             for j in page["items"]]
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)) + "  " + row[4] for row in rows]
    pages = max(1, -(-page["total"] // page["per_page"]))
    lines.append(f"page {page['page']} of {pages}, {page['total']} job{'s' if page['total'] != 1 else ''}")
    return "\n".join(lines) + "\n"


def _details(job: dict) -> str:
    options = job.get("options") or {}
    hotwords = options.get("hotwords") or []
    fields = [
        ("id", job["id"]),
        ("file", f"{job.get('filename')} ({_size(job.get('size_bytes'))}, {_clock(job.get('duration_ms'))})"),
        ("status", job["status"]),
        ("stage", f"{job.get('stage')} {job['progress'] * 100:.0f}%" if job["status"] == "running" else None),
        ("error", f"{job['error']['message']} [{job['error']['code']}]" if job.get("error") else None),
        ("profile", job.get("profile")),
        ("language", options.get("language")),
        ("itn", None if "itn" not in options else ("on" if options["itn"] else "off")),
        ("hotwords", ", ".join(str(h[0]) for h in hotwords) if hotwords else None),
        ("source", job.get("source")),
        ("attempt", job.get("attempt")),
        ("created", _when(job.get("created_at"))),
        ("started", _when(job.get("started_at")) if job.get("started_at") else None),
        ("finished", _when(job.get("finished_at")) if job.get("finished_at") else None),
        ("callback", job.get("callback_url")),
        ("transcript", (job.get("links") or {}).get("transcript") if job["status"] == "done" else None),
    ]
    lines = [f"{name + ':':<12}{value}" for name, value in fields if value not in (None, "")]
    lines += [f"{'warning:':<12}{warning}" for warning in job.get("warnings") or []]
    return "\n".join(lines) + "\n"


def _size(size: int | None) -> str:
    if size is None:
        return "-"
    if size < 1024:
        return f"{size} B"
    for unit in ("KiB", "MiB", "GiB"):
        size /= 1024
        if size < 1024 or unit == "GiB":
            break
    return f"{size:.1f} {unit}"
