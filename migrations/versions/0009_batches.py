"""Batches: many jobs submitted as one (POST /api/v1/batches), followed, exported and ended as one.

A ``batches`` row holds the batch's options, its state and its webhook's record; each job of a
batch names it (``jobs.batch_id``) and, when the client gave one, its key within the batch
(``jobs.batch_key``: a file's relative path), unique per batch so that a client resuming an
upload cannot add the same file twice.

Revision ID: 0009_batches
Revises: 0008_sources
"""
from alembic import op
import sqlalchemy as sa


revision = "0009_batches"
down_revision = "0008_sources"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "batches",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("tenant", sa.String(64), nullable=False),
        sa.Column("name", sa.String(200), nullable=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("profile", sa.String(32), nullable=False),
        sa.Column("options", sa.JSON(), nullable=False),
        sa.Column("callback_url", sa.Text(), nullable=True),
        sa.Column("webhook_attempts", sa.Integer(), nullable=False),
        sa.Column("webhook_last_status", sa.String(64), nullable=True),
        sa.Column("webhook_delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_batches_tenant_created_at", "batches", ["tenant", "created_at"])
    with op.batch_alter_table("jobs") as batch_op:
        batch_op.add_column(sa.Column("batch_id", sa.String(32), nullable=True))
        batch_op.add_column(sa.Column("batch_key", sa.String(512), nullable=True))
        batch_op.create_foreign_key("fk_jobs_batch_id", "batches", ["batch_id"], ["id"], ondelete="SET NULL")
        batch_op.create_index("ix_jobs_batch_id_status", ["batch_id", "status"])
        batch_op.create_index("uq_jobs_batch_key", ["batch_id", "batch_key"], unique=True)


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch_op:
        batch_op.drop_index("uq_jobs_batch_key")
        batch_op.drop_index("ix_jobs_batch_id_status")
        batch_op.drop_constraint("fk_jobs_batch_id", type_="foreignkey")
        batch_op.drop_column("batch_key")
        batch_op.drop_column("batch_id")
    op.drop_index("ix_batches_tenant_created_at", "batches")
    op.drop_table("batches")
