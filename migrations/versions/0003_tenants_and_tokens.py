"""Tenants and tokens: every job belongs to a tenant; API tokens, page sessions and one-time
sign-in codes are stored hashed.

Revision ID: 0003
Revises: 0002
"""
from alembic import op
import sqlalchemy as sa


revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Jobs made before tenants existed belong to "local" (the anonymous tenant of a loopback service).
    with op.batch_alter_table("jobs") as batch_op:
        batch_op.add_column(sa.Column("tenant", sa.String(length=64), server_default="local", nullable=False))
        batch_op.create_index("ix_jobs_tenant_status", ["tenant", "status"])
    op.create_table(
        "tokens",
        sa.Column("id", sa.String(length=16), primary_key=True),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("secret_hash", sa.String(length=64), nullable=False),
        sa.Column("tenant", sa.String(length=64), nullable=False),
        sa.Column("admin", sa.Boolean(), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=True),
        sa.Column("parent_id", sa.String(length=16), sa.ForeignKey("tokens.id", ondelete="CASCADE"), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_tokens_parent_id", "tokens", ["parent_id"])


def downgrade() -> None:
    op.drop_index("ix_tokens_parent_id", table_name="tokens")
    op.drop_table("tokens")
    with op.batch_alter_table("jobs") as batch_op:
        batch_op.drop_index("ix_jobs_tenant_status")
        batch_op.drop_column("tenant")
