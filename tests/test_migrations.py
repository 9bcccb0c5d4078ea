"""Alembic: one head, upgrade from empty on both backends, and the models match the migrations."""
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory

from core.db import make_engine
from core.migrate import alembic_config, upgrade
from core.models import Base


def test_single_head():
    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    assert len(script.get_heads()) == 1


def test_upgrade_from_empty_and_models_match(any_settings):
    upgrade(any_settings)
    engine = make_engine(any_settings.database_url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            diff = compare_metadata(context, Base.metadata)
            assert diff == [], f"models and migrations differ: {diff}"
            assert context.get_current_revision() is not None
    finally:
        engine.dispose()


def test_0005_turns_media_paths_into_storage_keys_and_resends_queued_jobs(any_settings):
    """Jobs stored before object storage: their absolute media paths become keys in the local store
    (the same files), and queued ones are sent again, to their profile's queue."""
    from datetime import datetime, timezone

    from alembic import command
    from sqlalchemy import text

    config = alembic_config(any_settings.database_url)
    upgrade(any_settings, "0002")
    engine = make_engine(any_settings.database_url)
    now = datetime.now(timezone.utc)
    rows = [("a" * 32, "queued", f"{any_settings.data_dir}/media/{'a' * 32}/source.flac"),
            ("b" * 32, "done", f"/srv/tingxie/media/{'b' * 32}/source.mp4")]
    try:
        with engine.begin() as conn:
            for job_id, status, path in rows:
                conn.execute(text(
                    "INSERT INTO jobs (id, status, profile, options, filename, media_path, size_bytes, source, priority,"
                    " progress, attempt, warnings, created_at, enqueued_at, webhook_attempts) VALUES (:id, :status,"
                    " 'offline', '{}', 'f', :path, 1, 'api', 0, 0, 0, '[]', :now, :now, 0)"),
                    {"id": job_id, "status": status, "path": path, "now": now})
        upgrade(any_settings)
        with engine.connect() as conn:
            got = conn.execute(text("SELECT id, media_key, enqueued_at FROM jobs ORDER BY id")).all()
        assert [(r[0], r[1]) for r in got] == [("a" * 32, f"{'a' * 32}/source.flac"), ("b" * 32, f"{'b' * 32}/source.mp4")]
        assert got[0][2] is None and got[1][2] is not None  # the queued job is sent again; the done one is left
        command.downgrade(config, "0002")
        with engine.connect() as conn:
            paths = conn.execute(text("SELECT media_path FROM jobs ORDER BY id")).scalars().all()
        assert paths == [f"media/{'a' * 32}/source.flac", f"media/{'b' * 32}/source.mp4"]
    finally:
        engine.dispose()


# --- history: released revisions never change; a database of any earlier release upgrades -------

def _released() -> dict:
    import json

    from core.migrate import MIGRATIONS_DIR

    return json.loads((MIGRATIONS_DIR / "released.json").read_text())


def test_every_released_revision_keeps_its_id_and_parent():
    """migrations/released.json is the record: each released id is still in the tree with the same
    parent, and every revision in the tree is recorded (a new one is added to the file with it)."""
    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    tree = {rev.revision: rev.down_revision for rev in script.walk_revisions()}
    released = _released()["revisions"]
    assert {rid: tree.get(rid, "<gone>") for rid in released} == released
    assert sorted(tree) == sorted(released), "a revision not recorded in migrations/released.json"


@pytest.mark.subprocess  # git, for main's history
def test_released_record_matches_mains_history(tmp_path):
    """Every (id, parent) any earlier main commit had is recorded, as today's parent or as superseded:
    an id is never reused for another revision without the file (and its repair) saying so."""
    import ast

    from tests.support.releases import extract, migration_commits

    commits = migration_commits()
    if not commits:
        pytest.skip("no git history here")
    record = _released()
    for commit in commits:
        for path in (extract(commit, tmp_path / commit[:12]) / "migrations" / "versions").glob("*.py"):
            values = {t.id: ast.literal_eval(node.value) for node in ast.parse(path.read_text()).body
                      if isinstance(node, ast.Assign) for t in node.targets if isinstance(t, ast.Name)}
            if "revision" not in values:
                continue
            rid, parent = values["revision"], values["down_revision"]
            assert rid in record["revisions"], f"{commit[:12]} released {rid}, missing from released.json"
            assert parent == record["revisions"][rid] or parent in record["superseded"].get(rid, []), (
                f"{commit[:12]} released {rid} with parent {parent}; released.json says otherwise")


def _history_commits():
    from tests.support.releases import migration_commits

    return migration_commits()


@pytest.mark.parametrize("commit", _history_commits(), ids=lambda c: c[:8])
def test_a_database_of_every_earlier_release_upgrades_and_serves(commit, any_settings, tmp_path, speech_path):
    """Built by the commit's own migrations, filled with jobs of two tenants (the default tenant's
    where it had no tenants), upgraded with this tree: each tenant lists exactly its jobs with its
    token, reads a transcript, and submits a new job; no difference from the models is left."""
    import dataclasses
    import io

    from core import tokens
    from core.db import session_scope
    from core.migrate import schema_differences
    from tests.support.releases import build, fill
    from web import create_app

    any_settings.data_dir.mkdir(parents=True, exist_ok=True)
    build(commit, any_settings.database_url, tmp_path / "trees")
    made = fill(any_settings.database_url)
    upgrade(any_settings)
    assert schema_differences(any_settings.database_url)[1] == []

    settings = dataclasses.replace(any_settings, auth="required", rate_limit="off", upload_rate_limit="off")
    app = create_app(settings, {"TESTING": True})
    try:
        with session_scope(app.extensions["tingxie"].db) as session:
            auth = {tenant: {"Authorization": f"Bearer {tokens.create(session, tenant=tenant).secret}"}
                    for tenant in ("local", "acme")}
        client = app.test_client()
        for tenant in ("local", "acme"):
            listed = client.get("/api/v1/jobs", headers=auth[tenant])
            assert listed.status_code == 200, listed.data
            assert sorted(j["id"] for j in listed.json["items"]) == sorted(made.get(tenant, {}).values())
        for tenant, ids in made.items():
            got = client.get(f"/api/v1/jobs/{ids['done']}/transcript?format=txt", headers=auth[tenant])
            assert got.status_code == 200 and "欢迎" in got.get_data(as_text=True)
            other = "acme" if tenant == "local" else "local"
            assert client.get(f"/api/v1/jobs/{ids['done']}", headers=auth[other]).status_code == 404
        for tenant in ("local", "acme"):
            form = {"file": (io.BytesIO(speech_path("asr_example.wav").read_bytes()), "asr_example.wav")}
            posted = client.post("/api/v1/jobs", data=form, content_type="multipart/form-data", headers=auth[tenant])
            assert posted.status_code == 202, posted.data
            job = client.get(f"/api/v1/jobs/{posted.json['id']}", headers=auth[tenant])
            assert job.status_code == 200 and job.json["status"] == "queued"
    finally:
        app.extensions["tingxie"].close()


@pytest.mark.cli  # `tingxie db upgrade` in a process of its own: the system tier
def test_db_upgrade_refuses_a_schema_that_does_not_match(any_settings, tmp_path):
    """A database stamped at head whose tables lack what the models need: `tingxie db upgrade`
    names the difference and exits 1 instead of saying "at head"."""
    import os
    import subprocess
    import sys

    from sqlalchemy import text

    upgrade(any_settings)
    engine = make_engine(any_settings.database_url)
    try:
        with engine.begin() as conn:
            conn.execute(text("DROP TABLE job_batches"))
    finally:
        engine.dispose()
    env = {**os.environ, "TINGXIE_DATA_DIR": str(any_settings.data_dir),
           "TINGXIE_DATABASE_URL": any_settings.database_url}
    done = subprocess.run([sys.executable, "-m", "cli", "db", "upgrade"], env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "at revision" not in done.stdout
    assert "add_table job_batches" in done.stderr
