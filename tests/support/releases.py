"""Databases made by earlier releases, with those releases' own code: every commit of main's
first-parent history that changed ``migrations/``, extracted with ``git archive`` (the repository
is not touched) and run in a subprocess whose PYTHONPATH is that tree alone."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
import io
from datetime import datetime, timezone
from pathlib import Path

from sqlalchemy import inspect, text

from core.db import make_engine
from tests.support.settings import REPO


# Run by the old tree's interpreter: its core.migrate, its migrations. A release whose tree had two
# heads could only be brought up with `tingxie db upgrade heads`; that is what its users ran.
_BUILD = """
import sys
from alembic import command
from alembic.script import ScriptDirectory
from core.migrate import alembic_config
config = alembic_config(sys.argv[1])
heads = ScriptDirectory.from_config(config).get_heads()
command.upgrade(config, "heads" if len(heads) > 1 else "head")
print(",".join(sorted(heads)))
"""


def migration_commits() -> list[str]:
    """Commits of HEAD's first-parent history that changed migrations/, oldest first; [] without git."""
    if shutil.which("git") is None or not (REPO / ".git").exists():
        return []
    out = subprocess.run(["git", "-C", str(REPO), "log", "--first-parent", "--format=%H", "HEAD", "--", "migrations/"],
                         capture_output=True, text=True, check=True).stdout.split()
    return list(reversed(out))


def extract(commit: str, into: Path) -> Path:
    """The commit's core/ and migrations/ (what its ``tingxie db upgrade`` runs), and contract/ where
    it has one (core reads it since the transcript contract), under ``into``."""
    names = subprocess.run(["git", "-C", str(REPO), "ls-tree", "--name-only", commit], capture_output=True,
                           text=True, check=True).stdout.split()
    folders = [name for name in ("core", "migrations", "contract") if name in names]
    archive = subprocess.run(["git", "-C", str(REPO), "archive", "--format=tar", commit, *folders],
                             capture_output=True, check=True).stdout
    into.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return into


def build(commit: str, database_url: str, scratch: Path) -> list[str]:
    """Create the schema with ``commit``'s own migrations; returns that tree's heads."""
    tree = extract(commit, scratch / commit[:12])
    env = {k: v for k, v in os.environ.items() if not k.startswith("TINGXIE_")}
    env["PYTHONPATH"] = str(tree)
    done = subprocess.run([sys.executable, "-c", _BUILD, database_url], cwd=tree, env=env, capture_output=True,
                          text=True, timeout=300)
    if done.returncode != 0:
        raise AssertionError(f"{commit[:12]}'s own upgrade failed:\n{done.stderr[-3000:]}")
    return done.stdout.split()[-1].split(",")


TRANSCRIPT = {"text": "欢迎。", "language": "zh", "duration_ms": 900, "segments": [
    {"start_ms": 0, "end_ms": 900, "text": "欢迎。", "punc": "。", "tokens": [[0, 900]],
     "words": [{"start_ms": 0, "end_ms": 900, "text": "欢迎"}]}]}


def fill(database_url: str, tenants: tuple[str, ...] = ("local", "acme")) -> dict[str, dict[str, str]]:
    """A done job (with its transcript) and a queued job per tenant, in raw SQL suited to the
    schema as it is. Where the schema has no tenant, every job is the default tenant's ("local").
    Returns {tenant: {"done": id, "queued": id}}."""
    engine = make_engine(database_url)
    try:
        columns = {c["name"] for c in inspect(engine).get_columns("jobs")}
        if "tenant" not in columns:
            tenants = ("local",)
        now = datetime.now(timezone.utc)
        made: dict[str, dict[str, str]] = {}
        with engine.begin() as conn:
            for n, tenant in enumerate(tenants):
                made[tenant] = {}
                for status in ("done", "queued"):
                    job_id = f"{n}{status[0]}".ljust(32, "0")
                    row = {"id": job_id, "status": status, "profile": "offline", "options": json.dumps({"language": "auto", "itn": True, "hotwords": [["达摩院", 20.0]]}),
                           "filename": f"{tenant}-{status}.wav", "size_bytes": 1, "source": "api", "priority": 0,
                           "progress": 1.0 if status == "done" else 0.0, "attempt": 1 if status == "done" else 0,
                           "warnings": "[]", "created_at": now, "enqueued_at": now, "webhook_attempts": 0,
                           "finished_at": now if status == "done" else None}
                    if "media_key" in columns:
                        row["media_key"] = f"{job_id}/source.wav"
                    if "media_path" in columns:
                        row["media_path"] = f"/srv/tingxie/media/{job_id}/source.wav"
                    if "tenant" in columns:
                        row["tenant"] = tenant
                    if "lost_attempts" in columns:
                        row["lost_attempts"] = 0
                    names = ", ".join(row)
                    conn.execute(text(f"INSERT INTO jobs ({names}) VALUES ({', '.join(':' + k for k in row)})"), row)
                    if status == "done":
                        conn.execute(text("INSERT INTO transcripts (job_id, language, duration_ms, text, data, created_at)"
                                          " VALUES (:id, 'zh', 900, :text, :data, :now)"),
                                     {"id": job_id, "text": TRANSCRIPT["text"], "data": json.dumps(TRANSCRIPT),
                                      "now": now})
                    made[tenant][status] = job_id
        return made
    finally:
        engine.dispose()
