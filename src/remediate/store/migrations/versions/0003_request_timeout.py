"""A request may shorten its playbook's timeout (a chain step's timeout, the chain's
remaining max_duration).

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"


def upgrade() -> None:
    with op.batch_alter_table("requests") as batch:
        batch.add_column(sa.Column("timeout_seconds", sa.Float(), nullable=True))
