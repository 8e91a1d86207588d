"""Executions carry the alert they answered (fingerprint and start), as their request does.

ROI's resolution times pair each successful run with its alert's resolved notification by
fingerprint and start. Read from the run itself, that pairing no longer joins every run of
the window to its decision and request: over a million executions on PostgreSQL the query
went from 1.1 s to 0.52 s (bench/report_speed.py). Existing runs are filled in from their
requests.

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"


def upgrade() -> None:
    with op.batch_alter_table("executions") as batch:
        batch.add_column(sa.Column("fingerprint", sa.String(length=128), nullable=True))
        batch.add_column(sa.Column("alert_starts_at", sa.Float(), nullable=True))
    # Only runs that answered an alert carry its name; a row-valued SET works on SQLite
    # (3.15 and later) and PostgreSQL alike.
    op.execute(
        "UPDATE executions SET (fingerprint, alert_starts_at) = ("
        "SELECT requests.fingerprint, requests.alert_starts_at FROM decisions"
        " JOIN requests ON requests.id = decisions.request_id"
        " WHERE decisions.id = executions.decision_id)"
        " WHERE alertname IS NOT NULL"
    )
