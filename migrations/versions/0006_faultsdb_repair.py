"""Repair: bring a database made by any earlier release to the schema of 0001-0005, by what it holds.

Releases before the 0003/0004/0005 chain was fixed stamped ``0005`` on a database where 0005 came
straight after 0002 (no tenants, tokens or reliability columns), or after 0003 (no reliability
columns). Today's 0005 has the same id, so Alembic finds such a database "at 0005" and would never
run 0003 or 0004. This revision reads the schema and creates, idempotently, whatever 0002-0005
would have created and is missing, with their data steps: jobs made before tenants belong to
"local"; lost attempts start at 0; media paths become storage keys and queued jobs are sent again.
On a database that went through today's chain it changes nothing.

Revision ID: 0006_faultsdb_repair
Revises: 0005
"""
from pathlib import PurePosixPath, PureWindowsPath

from alembic import op
import sqlalchemy as sa


revision = "0006_faultsdb_repair"
down_revision = "0005"
branch_labels = None
depends_on = None


def _columns(table: str) -> set[str]:
    return {column["name"] for column in sa.inspect(op.get_bind()).get_columns(table)}


def _indexes(table: str) -> set[str]:
    return {index["name"] for index in sa.inspect(op.get_bind()).get_indexes(table)}


def _tables() -> set[str]:
    return set(sa.inspect(op.get_bind()).get_table_names())


def _key(job_id: str, media_path: str) -> str:
    name = PureWindowsPath(media_path).name if "\\" in media_path else PurePosixPath(media_path).name
    return f"{job_id}/{name}"


def _media_keys() -> None:
    """0005's step: absolute media paths -> keys in the media store; queued jobs sent again."""
    with op.batch_alter_table("jobs") as batch_op:
        batch_op.add_column(sa.Column("media_key", sa.Text(), nullable=True))
    jobs = sa.table("jobs", sa.column("id", sa.String), sa.column("media_path", sa.Text),
                    sa.column("media_key", sa.Text), sa.column("status", sa.String),
                    sa.column("enqueued_at", sa.DateTime(timezone=True)))
    connection = op.get_bind()
    for job_id, media_path in connection.execute(sa.select(jobs.c.id, jobs.c.media_path)).all():
        connection.execute(jobs.update().where(jobs.c.id == job_id).values(media_key=_key(job_id, media_path or "")))
    connection.execute(jobs.update().where(jobs.c.status == "queued").values(enqueued_at=None))
    with op.batch_alter_table("jobs") as batch_op:
        batch_op.alter_column("media_key", existing_type=sa.Text(), nullable=False)
        batch_op.drop_column("media_path")


def upgrade() -> None:
    columns = _columns("jobs")
    if "media_info" not in columns:  # 0002
        with op.batch_alter_table("jobs") as batch_op:
            batch_op.add_column(sa.Column("media_info", sa.JSON(), nullable=True))
    if "tenant" not in columns:  # 0003: jobs made before tenants belong to "local"
        with op.batch_alter_table("jobs") as batch_op:
            batch_op.add_column(sa.Column("tenant", sa.String(length=64), server_default="local", nullable=False))
    if "ix_jobs_tenant_status" not in _indexes("jobs"):
        with op.batch_alter_table("jobs") as batch_op:
            batch_op.create_index("ix_jobs_tenant_status", ["tenant", "status"])
    if "tokens" not in _tables():  # 0003
        op.create_table(
            "tokens",
            sa.Column("id", sa.String(length=16), primary_key=True),
            sa.Column("kind", sa.String(length=16), nullable=False),
            sa.Column("secret_hash", sa.String(length=64), nullable=False),
            sa.Column("tenant", sa.String(length=64), nullable=False),
            sa.Column("admin", sa.Boolean(), nullable=False),
            sa.Column("name", sa.String(length=128), nullable=True),
            sa.Column("parent_id", sa.String(length=16), sa.ForeignKey("tokens.id", ondelete="CASCADE"),
                      nullable=True),
            sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
            sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
            sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
            sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        )
    if "ix_tokens_parent_id" not in _indexes("tokens"):
        op.create_index("ix_tokens_parent_id", "tokens", ["parent_id"])
    columns = _columns("jobs")
    if "lost_attempts" not in columns:  # 0004: every job so far lost no attempt
        with op.batch_alter_table("jobs") as batch_op:
            batch_op.add_column(sa.Column("lost_attempts", sa.Integer(), nullable=False, server_default="0"))
        with op.batch_alter_table("jobs") as batch_op:
            batch_op.alter_column("lost_attempts", server_default=None)
    if "worker" not in columns:  # 0004
        with op.batch_alter_table("jobs") as batch_op:
            batch_op.add_column(sa.Column("worker", sa.String(length=255), nullable=True))
    if "job_batches" not in _tables():  # 0004
        op.create_table(
            "job_batches",
            sa.Column("job_id", sa.String(length=32), nullable=False),
            sa.Column("key", sa.String(length=64), nullable=False),
            sa.Column("data", sa.JSON(), nullable=False),
            sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
            sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], ondelete="CASCADE"),
            sa.PrimaryKeyConstraint("job_id", "key"),
        )
    if "media_key" not in _columns("jobs"):  # 0005
        _media_keys()
    if "workers" not in _tables():  # 0005
        op.create_table(
            "workers",
            sa.Column("id", sa.String(length=255), nullable=False),
            sa.Column("hostname", sa.String(length=255), nullable=False),
            sa.Column("profiles", sa.JSON(), nullable=False),
            sa.Column("device", sa.String(length=32), nullable=False),
            sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
            sa.Column("seen_at", sa.DateTime(timezone=True), nullable=False),
            sa.Column("metrics", sa.JSON(), nullable=True),
            sa.PrimaryKeyConstraint("id"),
        )
    if "ix_workers_seen_at" not in _indexes("workers"):
        with op.batch_alter_table("workers") as batch_op:
            batch_op.create_index("ix_workers_seen_at", ["seen_at"], unique=False)


def downgrade() -> None:
    """Nothing: what this revision added was what 0002-0005 should have; their own downgrades remove it."""
