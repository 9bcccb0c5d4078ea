"""Jobs by link and delivery (issue 24): jobs.source_url, the URL a worker fetches the media from;
jobs.output_last_status and jobs.output_delivered_at, the delivery of the transcript to output_url.

Revision ID: 0008_sources
Revises: 0007_waiting_reason
"""
from alembic import op
import sqlalchemy as sa


revision = "0008_sources"
down_revision = "0007_waiting_reason"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch_op:
        batch_op.add_column(sa.Column("source_url", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("output_last_status", sa.String(128), nullable=True))
        batch_op.add_column(sa.Column("output_delivered_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch_op:
        batch_op.drop_column("output_delivered_at")
        batch_op.drop_column("output_last_status")
        batch_op.drop_column("source_url")
