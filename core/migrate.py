"""Alembic, driven from Settings: ``tingxie db upgrade`` and the embedded start-up call this.

A database is "at head" only when its schema matches the models: :func:`upgrade` runs Alembic,
then compares the live schema with ``core.models`` (Alembic's ``compare_metadata``) and raises
:class:`SchemaMismatchError` naming every difference, so a database whose revision stamp claims
more than its tables hold is never reported as up to date.
"""
from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text

from core.db import make_engine
from core.models import Base
from core.settings import Settings

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"

# Differences that change nothing the service reads or writes: a table or an index the models do
# not name (a DBA's own, or one a later release will use) is left alone. Everything else (a
# missing or extra column, a type, a nullability, a missing table or index) is a mismatch.
HARMLESS = frozenset({"remove_table", "remove_index"})


class SchemaMismatchError(RuntimeError):
    """The database's schema differs from the models after upgrading; ``differences`` lists how."""

    def __init__(self, revision: str | None, differences: list[str]):
        self.revision, self.differences = revision, differences
        super().__init__(
            f"the database is stamped {revision or 'with no revision'}, but its schema does not match this "
            f"release's models:\n  " + "\n  ".join(differences)
            + "\nNothing was changed beyond the migrations. Restore the database from a backup taken before the "
              "upgrade, or bring the listed tables and columns in line by hand, then run `tingxie db upgrade` again.")


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


def upgrade(settings: Settings, revision: str = "head", *, check: bool = True) -> None:
    """Migrate to ``revision``; at head (``check``), raise SchemaMismatchError if the schema then
    differs from the models."""
    if settings.database_url.startswith("sqlite"):
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    config = alembic_config(settings.database_url)
    _merge_overlapping_stamps(settings.database_url, config)
    command.upgrade(config, revision)
    if check and revision in ("head", "heads"):
        current, differences = schema_differences(settings.database_url)
        if differences:
            raise SchemaMismatchError(current, differences)


def schema_differences(database_url: str) -> tuple[str | None, list[str]]:
    """(the stamped revision, the differences between the live schema and the models that matter)."""
    engine = make_engine(database_url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            diffs = compare_metadata(context, Base.metadata)
            return ", ".join(context.get_current_heads()) or None, [
                _describe(diff) for diff in diffs if not (isinstance(diff, tuple) and diff[0] in HARMLESS)]
    finally:
        engine.dispose()


def _describe(diff) -> str:
    """One line per difference: ("add_column", None, "jobs", Column(...)) -> "add_column jobs.tenant"."""
    if isinstance(diff, list):  # modify_* come grouped per column
        return "; ".join(_describe(item) for item in diff)
    kind, rest = diff[0], diff[1:]
    if kind in ("add_column", "remove_column"):
        return f"{kind} {rest[1]}.{rest[2].name}"
    if kind.startswith("modify_"):
        return f"{kind} {rest[1]}.{rest[2]}: database {rest[4]!r}, models {rest[5]!r}"
    name = getattr(rest[0], "name", rest[0])
    table = getattr(getattr(rest[0], "table", None), "name", None)
    return f"{kind} {table + '.' if table else ''}{name}"


def _merge_overlapping_stamps(database_url: str, config: Config) -> None:
    """A database stamped with two revisions of which one is, in this tree, an ancestor of the
    other (a release whose migrations had two heads, upgraded with ``heads``) keeps only the later
    one: Alembic would otherwise refuse, or try to run the earlier one's successors twice."""
    script = ScriptDirectory.from_config(config)
    engine = make_engine(database_url)
    try:
        with engine.begin() as connection:
            stamps = MigrationContext.configure(connection).get_current_heads()
            if len(stamps) < 2 or any(script.get_revision(s) is None for s in stamps):
                return
            for stamp in stamps:
                if any(other != stamp and stamp in {r.revision for r in script.iterate_revisions(other, "base")}
                       for other in stamps):
                    connection.execute(text("DELETE FROM alembic_version WHERE version_num = :v"), {"v": stamp})
    finally:
        engine.dispose()
