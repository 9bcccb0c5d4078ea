"""Reliability: lost attempts counted against a cap, the worker running each attempt (so it can
hand its jobs back on shutdown), and finished ASR batches kept for resume.

Revision ID: 0004
Revises: 0003
"""
from alembic import op
import sqlalchemy as sa


revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch_op:
        batch_op.add_column(sa.Column("lost_attempts", sa.Integer(), nullable=False, server_default="0"))
        batch_op.add_column(sa.Column("worker", sa.String(length=255), nullable=True))
    with op.batch_alter_table("jobs") as batch_op:
        batch_op.alter_column("lost_attempts", server_default=None)
    op.create_table(
        "job_batches",
        sa.Column("job_id", sa.String(length=32), nullable=False),
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("job_id", "key"),
    )


def downgrade() -> None:
    op.drop_table("job_batches")
    with op.batch_alter_table("jobs") as batch_op:
        batch_op.drop_column("worker")
        batch_op.drop_column("lost_attempts")
