"""The store's tables (SQLAlchemy Core), the same on SQLite and PostgreSQL.

Gate state is not kept in tables of its own: rate limits, cooldowns,
idempotency and the circuit breaker are all derived from `executions`, so a
webhook, a timer and the autonomous loop share them through one store.
Times are float seconds since the epoch (UTC).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)

metadata = MetaData()

# Partial indexes and their predicates. SQLite's goes on at once; PostgreSQL's is added by
# with_postgresql_predicates() when a PostgreSQL store opens: naming `postgresql_where`
# here would import SQLAlchemy's whole PostgreSQL dialect into every SQLite process.
_PARTIAL: list[tuple[Index, Any]] = []


def _partial(name: str, *columns: Any, sqlite_where: Any) -> Index:
    index = Index(name, *columns, sqlite_where=sqlite_where)
    _PARTIAL.append((index, sqlite_where))
    return index


def with_postgresql_predicates() -> None:
    """Give the partial indexes their PostgreSQL predicate (idempotent)."""
    for index, predicate in _PARTIAL:
        index.dialect_kwargs["postgresql_where"] = predicate


requests = Table(
    "requests",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("created_at", Float, nullable=False),
    Column("source", String(16), nullable=False),
    Column("playbook", String(128)),
    Column("chain", String(128)),
    Column("parameters", JSON, nullable=False, default=dict),
    Column("alertname", String(256)),
    Column("fingerprint", String(128)),
    Column("labels", JSON),
    Column("annotations", JSON),
    Column("alert_starts_at", Float),
    Column("alert_ends_at", Float),
    Column("confidence", Float, nullable=False),
    Column("forced", Boolean, nullable=False, default=False),
    Column("dry_run", Boolean, nullable=False, default=False),
    Column("chain_run_id", Integer),
    # Shorter than the playbook's own timeout when set (a chain step's timeout).
    Column("timeout_seconds", Float),
)
# Resolved notifications, looked up by the alert they end (migration 0007).
_partial(
    "ix_requests_resolved",
    requests.c.fingerprint,
    requests.c.alert_starts_at,
    requests.c.alert_ends_at,
    requests.c.created_at,
    sqlite_where=requests.c.alert_ends_at.is_not(None),
)

decisions = Table(
    "decisions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("request_id", Integer, ForeignKey("requests.id"), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("source", String(16), nullable=False),
    Column("playbook", String(128)),
    Column("alertname", String(256)),
    Column("target", String(256)),
    # execute | block | escalate | dry_run | record (a resolved notification, say)
    Column("action", String(16), nullable=False),
    Column("check_name", String(32)),
    Column("reason", Text, nullable=False, default=""),
    Column("confidence", Float, nullable=False),
    Column("forced", Boolean, nullable=False, default=False),
    Index("ix_decisions_created_at", "created_at"),
    Index("ix_decisions_request_id", "request_id"),
    Index("ix_decisions_action_created_at", "action", "created_at"),
)
# Blocks and escalations with what the reports show of them (migration 0007).
_partial(
    "ix_decisions_refusals",
    decisions.c.action,
    decisions.c.created_at,
    decisions.c.check_name,
    decisions.c.playbook,
    decisions.c.reason,
    sqlite_where=decisions.c.action.in_(["block", "escalate"]),
)

executions = Table(
    "executions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("decision_id", Integer, ForeignKey("decisions.id"), nullable=False),
    Column("attempt", Integer, nullable=False, default=1),
    Column("playbook", String(128), nullable=False),
    Column("target", String(256), nullable=False),
    Column("source", String(16), nullable=False),
    Column("alertname", String(256)),
    Column("idempotency_key", String(512)),
    Column("forced", Boolean, nullable=False, default=False),
    # When the gate admitted it: rate limits and cooldowns count from here.
    Column("admitted_at", Float, nullable=False),
    Column("started_at", Float),
    Column("finished_at", Float),
    # queued | running | success | failure | timeout | skipped | interrupted
    Column("status", String(16), nullable=False),
    Column("duration_seconds", Float),
    Column("root_cause", String(64)),
    Column("summary", Text),
    Column("stdout", Text),
    Column("stderr", Text),
    Column("actions", JSON),
    Column("details", JSON),
    Column("lease_owner", String(128)),
    Column("lease_expires_at", Float),
    # The alert it answered, as its request holds it: ROI's resolution times join a run to
    # the alert's resolved notification by these without reading decisions and requests
    # (migration 0008).
    Column("fingerprint", String(128)),
    Column("alert_starts_at", Float),
    Index("ix_executions_admitted_at", "admitted_at"),
    Index("ix_executions_playbook_admitted_at", "playbook", "admitted_at"),
    Index("ix_executions_alertname_admitted_at", "alertname", "admitted_at"),
    Index("ix_executions_idempotency_key_admitted_at", "idempotency_key", "admitted_at"),
    Index("ix_executions_status", "status"),
    # The reports read a window's runs as one range per playbook, source and status, already
    # grouped in this order (analytics/summary.py; migration 0007).
    Index(
        "ix_executions_report_runs",
        "playbook",
        "source",
        "status",
        "admitted_at",
        "attempt",
        "duration_seconds",
    ),
)
# Diagnosed runs, for the root-cause shares of the trends (migration 0007).
_partial(
    "ix_executions_root_cause",
    executions.c.root_cause,
    executions.c.admitted_at,
    executions.c.attempt,
    executions.c.status,
    sqlite_where=executions.c.root_cause.is_not(None),
)

# Keys of configurable rate-limit rules (one row per rule an execution counts against).
execution_keys = Table(
    "execution_keys",
    metadata,
    Column("execution_id", Integer, ForeignKey("executions.id"), primary_key=True),
    Column("rule", String(128), primary_key=True),
    Column("key", String(512), nullable=False),
    Column("admitted_at", Float, nullable=False),
    Index("ix_execution_keys_rule_key_admitted_at", "rule", "key", "admitted_at"),
)

# Impact figures of an execution: bytes_reclaimed, service_restarted, rows_removed, oom_detected.
impacts = Table(
    "impacts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("execution_id", Integer, ForeignKey("executions.id"), nullable=False),
    Column("playbook", String(128), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("subject", String(256), nullable=False, default=""),
    Column("value", Float, nullable=False),
    Column("at", Float, nullable=False),
    Index("ix_impacts_kind_at", "kind", "at"),
    # The reports read a window's figures as one range per kind, subject and playbook
    # (analytics/summary.py; migration 0007).
    Index("ix_impacts_report", "kind", "subject", "playbook", "at", "value"),
)

# One lease per (playbook, target): the same fix never runs twice at once.
leases = Table(
    "leases",
    metadata,
    Column("key", String(400), primary_key=True),
    Column("execution_id", Integer, nullable=False),
    Column("owner", String(128), nullable=False),
    Column("acquired_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
)

approvals = Table(
    "approvals",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("decision_id", Integer, ForeignKey("decisions.id"), nullable=False),
    Column("request_id", Integer, ForeignKey("requests.id"), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
    # pending | approved | rejected | expired
    Column("status", String(16), nullable=False),
    Column("decided_at", Float),
    Column("decided_by", String(128)),
    Column("note", Text),
    # The decision the approved request got when it passed through the gate again.
    Column("outcome_decision_id", Integer),
    Index("ix_approvals_status", "status"),
)

# Named flags: the pause flag lives here.
flags = Table(
    "flags",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("value", JSON, nullable=False),
    Column("updated_at", Float, nullable=False),
)

forecasts = Table(
    "forecasts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("created_at", Float, nullable=False),
    Column("resource", String(256), nullable=False),
    Column("current", Float, nullable=False),
    Column("trend_per_day", Float, nullable=False),
    Column("horizon_at", Float, nullable=False),
    Column("predicted", Float, nullable=False),
    Column("seconds_to_full", Float),
    Column("severity", String(16), nullable=False),
    Column("confidence", Float, nullable=False),
    Column("scored_at", Float),
    Column("actual", Float),
    Column("score", Float),
    Index("ix_forecasts_resource_created_at", "resource", "created_at"),
)

chain_runs = Table(
    "chain_runs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("chain", String(128), nullable=False),
    Column("source", String(16), nullable=False),
    Column("started_at", Float, nullable=False),
    Column("finished_at", Float),
    # running | success | failure | aborted | timeout | interrupted
    Column("status", String(16), nullable=False),
    Column("spec", JSON, nullable=False),
    Column("owner", String(128)),
    Column("lease_expires_at", Float),
)

chain_steps = Table(
    "chain_steps",
    metadata,
    Column("run_id", Integer, ForeignKey("chain_runs.id"), primary_key=True),
    Column("position", Integer, primary_key=True),
    Column("playbook", String(128), nullable=False),
    # pending | running | success | failure | skipped | timeout | rolled_back
    Column("status", String(16), nullable=False),
    Column("execution_id", Integer),
    Column("started_at", Float),
    Column("finished_at", Float),
    Column("detail", Text),
)

# Resource usage over time: `remediate serve` samples at an interval, `observe` once.
# resource: "disk:/srv", "memory", "swap", "container:web"; used and capacity in bytes.
samples = Table(
    "samples",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", Float, nullable=False),
    Column("resource", String(256), nullable=False),
    Column("used", Float, nullable=False),
    Column("capacity", Float, nullable=False),
    Index("ix_samples_resource_at", "resource", "at"),
    Index("ix_samples_at", "at"),
)

# What each observe cycle saw and decided: one row per finding.
observations = Table(
    "observations",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("created_at", Float, nullable=False),
    Column("cycle", String(32), nullable=False),
    # forecast.critical | forecast.warning | container.down | alert.firing | ...
    Column("kind", String(32), nullable=False),
    Column("resource", String(256), nullable=False),
    Column("severity", String(16), nullable=False),
    Column("confidence", Float, nullable=False),
    Column("summary", Text, nullable=False, default=""),
    # act | skip: what the decision matrix said; the gate's answer is in decision_id
    Column("decision", String(16), nullable=False),
    Column("reason", Text, nullable=False, default=""),
    Column("playbook", String(128)),
    Column("decision_id", Integer),
    Column("data", JSON),
    Index("ix_observations_created_at", "created_at"),
    Index("ix_observations_cycle", "cycle"),
)
