"""A running job says what it waits for (jobs.waiting_reason): a worker waiting out a media store
that is down holds its attempt and shows "media store unavailable" instead of failing.

Revision ID: 0007_waiting_reason
Revises: 0006_faultsdb_repair
"""
from alembic import op
import sqlalchemy as sa


revision = "0007_waiting_reason"
down_revision = "0006_faultsdb_repair"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch_op:
        batch_op.add_column(sa.Column("waiting_reason", sa.String(64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch_op:
        batch_op.drop_column("waiting_reason")
