"""``tingxie submit DIR/`` and ``tingxie submit --from list.txt``: many files (or links) as one batch
on the server, with one progress bar over all of them, resumed after Ctrl-C without sending a file
twice.

Resuming: the batch's id is kept in a state file (under ``$XDG_CACHE_HOME/tingxie/batches/``, named
by the server and the inputs, so the same command finds it again). A run that finds an open batch
there asks the server which keys the batch already has (each file's key is its path relative to
the folder sent) and uploads only the others; the server itself answers a key it already has with
its job, so a file whose upload was cut off after the server took it is not added twice either.
"""
from __future__ import annotations

import hashlib
import json
import os
import sys
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

TERMINAL = ("completed", "canceled")
LINK_PREFIXES = ("http://", "https://", "s3://")
POLL_S = 2.0


@dataclass(frozen=True)
class Entry:
    """One file of the batch and its key there, or one link (``path`` None)."""

    key: str
    path: Path | None = None


def collect(inputs: list[str], from_file: str | None) -> list[Entry]:
    """The batch's entries: every file under each folder (its path relative to the folder, as the
    key), each file named (its name), and each line of ``from_file`` (a path, or a link)."""
    entries: list[Entry] = []
    for raw in inputs:
        path = Path(raw)
        if path.is_dir():
            entries += [Entry(p.relative_to(path).as_posix(), p) for p in sorted(path.rglob("*"))
                        if p.is_file() and not p.name.startswith(".")]
        else:
            entries.append(Entry(path.name, path))
    if from_file:
        base = Path(from_file).parent
        for line in Path(from_file).read_text(encoding="utf-8").splitlines():
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            if line.startswith(LINK_PREFIXES):
                entries.append(Entry(line))
            else:
                path = Path(line) if Path(line).is_absolute() else base / line
                entries.append(Entry(line, path))
    return entries


def state_path(server: str, entries: list[Entry]) -> Path:
    digest = hashlib.sha256(json.dumps([server, [(e.key, str(e.path)) for e in entries]]).encode()).hexdigest()
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "tingxie" / "batches" / f"{digest[:24]}.json"


def _save(path: Path, batch_id: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".part")
    tmp.write_text(json.dumps({"batch_id": batch_id}))
    tmp.replace(path)


class Bar:
    """The one bar: files uploaded, then jobs ended, out of all of them."""

    def __init__(self, total: int, mode: str, stream):
        from tqdm import tqdm

        self.mode, self.stream = mode, stream
        self.bar = tqdm(total=total, desc="upload", file=stream, disable=mode != "bar" or None, unit="file",
                        bar_format="{desc} {n_fmt}/{total_fmt} |{bar}| {elapsed}<{remaining}")

    def show(self, phase: str, done: int, **details) -> None:
        if self.mode == "json":
            self.stream.write(json.dumps({"event": phase, "done": done, "total": self.bar.total, **details}) + "\n")
            self.stream.flush()
            return
        label = phase + "".join(f" {name}={value}" for name, value in details.items() if value)
        self.bar.set_description_str(label, refresh=False)
        self.bar.n = done
        self.bar.refresh()

    def close(self) -> None:
        self.bar.close()


def run(args, client, options: dict) -> int:
    """Submit the batch (or resume it), then with ``--wait`` follow it to its end and unpack its
    transcripts into ``-o DIR``. Exit statuses as ``tingxie submit``'s."""
    from cli.client import ApiError, ServerError
    from cli.outcomes import FAILED, INTERRUPTED, OK, UNREACHABLE, USAGE

    try:
        entries = collect(args.files, args.from_file)
    except OSError as exc:
        print(f"tingxie submit: cannot read --from: {exc}", file=sys.stderr)
        return USAGE
    links = [e for e in entries if e.path is None]
    if not entries or (links and len(links) != len(entries)):
        print("tingxie submit: " + ("nothing to send" if not entries else
                                    "a batch is either links or files: send them as two batches"), file=sys.stderr)
        return USAGE
    state = state_path(client.server_url, entries)
    bar = Bar(len(entries), args.progress, sys.stderr)
    batch_id = None
    try:
        batch_id = _resume(client, state)
        if batch_id is None:
            batch = client.create_batch(options, sources=[e.key for e in links] or None,
                                        name=Path(args.files[0]).name if args.files else Path(args.from_file).stem)
            batch_id = batch["id"]
            _save(state, batch_id)
        batch = client.get_batch(batch_id)
        if batch["status"] == "open":
            refused = _upload_missing(client, batch_id, entries, bar)
            batch = client.close_batch(batch_id)
            for entry, error in refused:
                bar.stream.write(f"{entry.path}: {error.message} [{error.code}]\n")
        if not args.wait:
            bar.close()
            print(batch_id, flush=True)
            state.unlink(missing_ok=True)
            return OK
        batch = _follow(client, batch_id, bar)
        bar.close()
        if args.output_dir:
            _unpack(client, batch_id, args.format, Path(args.output_dir))
        state.unlink(missing_ok=True)
        counts = batch["counts"]
        print(f"tingxie submit: batch {batch_id} {batch['status']}: {counts['done']} done, {counts['failed']} failed, "
              f"{counts['canceled']} canceled", file=sys.stderr)
        return OK if counts["done"] == batch["total"] == len(entries) else FAILED
    except KeyboardInterrupt:
        bar.close()
        print(f"tingxie submit: interrupted; batch {batch_id or '(not made)'} goes on: run the same command again "
              "to resume it (files already sent are not sent again)", file=sys.stderr)
        return INTERRUPTED
    except ServerError as exc:
        bar.close()
        print(f"tingxie submit: {exc.message}", file=sys.stderr)
        return UNREACHABLE
    except ApiError as exc:
        bar.close()
        print(f"tingxie submit: {exc.message} [{exc.code}]", file=sys.stderr)
        return FAILED


def _resume(client, state: Path) -> str | None:
    """The batch an interrupted run of the same command made, if the server still has it."""
    from cli.client import ApiError

    try:
        batch_id = json.loads(state.read_text())["batch_id"]
    except (OSError, ValueError, KeyError):
        return None
    try:
        client.get_batch(batch_id)
    except ApiError:
        return None
    return batch_id


def _upload_missing(client, batch_id: str, entries: list[Entry], bar: Bar) -> list:
    """Upload the files the batch does not have yet; (entry, ApiError) for each the server refused."""
    from cli.client import ApiError

    have = {job["batch_key"] for job in client.batch_jobs(batch_id)}
    done = sum(1 for e in entries if e.key in have)
    bar.show("upload", done)
    refused = []
    for entry in entries:
        if entry.key in have:
            continue
        while True:
            try:
                client.add_to_batch(batch_id, entry.path, entry.key)
                break
            except ApiError as exc:
                if exc.status == 429:  # the upload rate limit: wait as told, then send it again
                    time.sleep(exc.retry_after_s or 5)
                    continue
                refused.append((entry, exc))
                break
            except OSError as exc:
                refused.append((entry, ApiError(0, "unreadable", str(exc))))
                break
        done += 1
        bar.show("upload", done, refused=len(refused))
    return refused


def _follow(client, batch_id: str, bar: Bar) -> dict:
    while True:
        batch = client.get_batch(batch_id)
        counts = batch["counts"]
        ended = counts["done"] + counts["failed"] + counts["canceled"]
        bar.bar.total = batch["total"]
        bar.show("transcribe", ended, running=counts["running"], failed=counts["failed"])
        if batch["status"] in TERMINAL:
            return batch
        time.sleep(POLL_S)


def _unpack(client, batch_id: str, fmt: str, out_dir: Path) -> None:
    """The batch's transcripts into ``out_dir``, each at its key's path (entries that would land
    outside it are skipped)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    archive_path = out_dir / f".{batch_id}.zip"
    client.batch_zip(batch_id, [fmt], archive_path)
    root = out_dir.resolve()
    with zipfile.ZipFile(archive_path) as archive:
        for info in archive.infolist():
            target = (out_dir / info.filename).resolve()
            if info.is_dir() or not target.is_relative_to(root):
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            with archive.open(info) as src, open(target, "wb") as dst:
                while chunk := src.read(256 * 1024):
                    dst.write(chunk)
    archive_path.unlink()
