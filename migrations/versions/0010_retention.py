"""Retention (core.retention): when a job's media is due to be deleted from the store
(jobs.media_expires_at, NULL: kept) and when it was (jobs.media_expired_at); the sweeper finds
due jobs by the index.

Revision ID: 0010_retention
Revises: 0009_batches
"""
from alembic import op
import sqlalchemy as sa


revision = "0010_retention"
down_revision = "0009_batches"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch_op:
        batch_op.add_column(sa.Column("media_expires_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("media_expired_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index("ix_jobs_media_expires_at", ["media_expires_at"])
        batch_op.create_index("ix_jobs_finished_at", ["finished_at"])


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch_op:
        batch_op.drop_index("ix_jobs_finished_at")
        batch_op.drop_index("ix_jobs_media_expires_at")
        batch_op.drop_column("media_expired_at")
        batch_op.drop_column("media_expires_at")
