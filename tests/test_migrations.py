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
