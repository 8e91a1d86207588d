"""When a resolved alert ended, and which decision an approval led to.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"


def upgrade() -> None:
    with op.batch_alter_table("requests") as batch:
        batch.add_column(sa.Column("alert_ends_at", sa.Float(), nullable=True))
    with op.batch_alter_table("approvals") as batch:
        batch.add_column(sa.Column("outcome_decision_id", sa.Integer(), nullable=True))
    op.create_index("ix_decisions_request_id", "decisions", ["request_id"], unique=False)
