"""Alembic: one head, upgrade from empty on both backends, and the models match the migrations."""
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
