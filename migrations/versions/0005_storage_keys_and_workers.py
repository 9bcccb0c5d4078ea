"""Storage keys instead of absolute paths; workers announce themselves; queued jobs re-sent to
their profile's queue.

jobs.media_path held an absolute path under the data directory ("<data>/media/<id>/source.ext"),
which tied every host to one shared disk mounted at one path. jobs.media_key holds the key in the
media store ("<id>/source.ext"), the same file for the local store's root "<data>/media".

Queues are per profile from this revision on: queued jobs get ``enqueued_at`` cleared so a worker's
sweeper sends them again to their profile's queue (a leftover message on the old shared queue is
harmless: the claim is a conditional UPDATE).

Revision ID: 0005
Revises: 0004
"""
from pathlib import PurePosixPath, PureWindowsPath

from alembic import op
import sqlalchemy as sa


revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def _key(job_id: str, media_path: str) -> str:
    name = PureWindowsPath(media_path).name if "\\" in media_path else PurePosixPath(media_path).name
    return f"{job_id}/{name}"


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch_op:
        batch_op.add_column(sa.Column("media_key", sa.Text(), nullable=True))
    jobs = sa.table("jobs", sa.column("id", sa.String), sa.column("media_path", sa.Text),
                    sa.column("media_key", sa.Text), sa.column("status", sa.String),
                    sa.column("enqueued_at", sa.DateTime(timezone=True)))
    connection = op.get_bind()
    rows = connection.execute(sa.select(jobs.c.id, jobs.c.media_path)).all()
    for job_id, media_path in rows:
        connection.execute(jobs.update().where(jobs.c.id == job_id).values(media_key=_key(job_id, media_path or "")))
    connection.execute(jobs.update().where(jobs.c.status == "queued").values(enqueued_at=None))
    with op.batch_alter_table("jobs") as batch_op:
        batch_op.alter_column("media_key", existing_type=sa.Text(), nullable=False)
        batch_op.drop_column("media_path")

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
    with op.batch_alter_table("workers") as batch_op:
        batch_op.create_index(batch_op.f("ix_workers_seen_at"), ["seen_at"], unique=False)


def downgrade() -> None:
    """Back to paths. The data directory is not known here, so they come back relative to it
    ("media/<id>/source.ext"): the previous release finds them when started in the data directory."""
    op.drop_table("workers")
    with op.batch_alter_table("jobs") as batch_op:
        batch_op.add_column(sa.Column("media_path", sa.Text(), nullable=True))
    jobs = sa.table("jobs", sa.column("id", sa.String), sa.column("media_path", sa.Text),
                    sa.column("media_key", sa.Text))
    op.get_bind().execute(jobs.update().values(media_path=sa.literal("media/") + jobs.c.media_key))
    with op.batch_alter_table("jobs") as batch_op:
        batch_op.alter_column("media_path", existing_type=sa.Text(), nullable=False)
        batch_op.drop_column("media_key")
