"""database-maintenance: VACUUM bloated PostgreSQL tables, analyse (and purge) Redis memory.

Configured under `playbooks.settings.database-maintenance`:

    postgres:
      - {name: immich, dsn: "postgresql://immich@127.0.0.1:5432/immich", dead_tuple_threshold: 1000}
    redis:
      - {name: cache, url: "redis://127.0.0.1:6379/0", fragmentation_threshold: 1.5}

The plan reads PostgreSQL statistics (read-only) to name the exact statements;
each target is tried once: an unreachable one is a failure with libpq's or
redis-py's reason, and the others still run. Connection strings may hold
passwords: only `user@host:port/db` is ever shown.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from remediate.config.models import Model, Name, Settings
from remediate.errors import ParameterError
from remediate.playbooks.base import (
    Action,
    Context,
    Impact,
    Plan,
    Playbook,
    PlaybookTimeout,
    Result,
    Risk,
)

# The clients load psycopg and redis-py (~170 ms of imports measured here): they are
# imported where they are used, so building the registry does not pay for them.
if TYPE_CHECKING:
    from remediate.system.postgres import PostgresClient, TableStatistics

__all__ = ["DatabaseMaintenance", "DatabaseMaintenanceSettings", "PostgresTarget", "RedisTarget"]

DOCTOR_EXCERPT = 500


class PostgresTarget(Model):
    name: Name
    dsn: SecretStr
    dead_tuple_threshold: int = Field(1000, ge=0)
    dead_ratio_threshold: float = Field(0.1, ge=0, le=1)
    reindex: bool = False
    statement_timeout_seconds: float = Field(600, gt=0)
    connect_timeout_seconds: float = Field(5, gt=0, le=120)
    max_tables: int = Field(50, ge=1, le=10_000)

    @field_validator("dsn")
    @classmethod
    def _parses(cls, dsn: SecretStr) -> SecretStr:
        from remediate.system import postgres

        # The parser's own message may quote the string (and its password): say it our way.
        if postgres.describe_dsn(dsn.get_secret_value()) == "<invalid connection string>":
            raise ValueError("not a PostgreSQL connection string (a URL or key=value pairs)")
        return dsn


class RedisTarget(Model):
    name: Name
    url: SecretStr
    fragmentation_threshold: float = Field(1.5, ge=0)
    purge: bool = True
    sample_keys: int = Field(1000, ge=0, le=1_000_000)
    top_keys: int = Field(10, ge=0, le=1000)
    timeout_seconds: float = Field(5, gt=0, le=120)

    @field_validator("url")
    @classmethod
    def _scheme(cls, url: SecretStr) -> SecretStr:
        scheme = url.get_secret_value().partition("://")[0]
        if scheme not in ("redis", "rediss", "unix"):
            raise ValueError("a Redis URL starts with redis://, rediss:// or unix://")
        return url


class DatabaseMaintenanceSettings(Model):
    postgres: tuple[PostgresTarget, ...] = ()
    redis: tuple[RedisTarget, ...] = ()
    timeout_seconds: float = Field(1800, gt=0)

    @model_validator(mode="after")
    def _unique_names(self) -> DatabaseMaintenanceSettings:
        seen: set[str] = set()
        for name in self.names():
            if name in seen:
                raise ValueError(f"database name {name!r} appears twice")
            seen.add(name)
        return self

    def names(self) -> list[str]:
        return [target.name for target in self.postgres] + [target.name for target in self.redis]


class DatabaseParameters(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    database: Name | None = None


@dataclass
class Outcome:
    """One target's share of the result."""

    name: str
    ok: bool
    summary: str
    details: dict[str, Any]
    impacts: list[Impact] = field(default_factory=list)
    output: list[str] = field(default_factory=list)


class DatabaseMaintenance(Playbook):
    """Vacuum PostgreSQL tables over a dead-tuple threshold; analyse and purge Redis memory."""

    name: ClassVar[str] = "database-maintenance"
    description: ClassVar[str] = (
        "PostgreSQL: VACUUM (ANALYZE) tables over a dead-tuple threshold, optional REINDEX "
        "CONCURRENTLY; Redis: fragmentation, MEMORY DOCTOR, biggest keys, MEMORY PURGE"
    )
    risk: ClassVar[Risk] = "medium"
    requires_confirmation: ClassVar[bool] = True
    Parameters = DatabaseParameters

    def __init__(self, config: DatabaseMaintenanceSettings | None = None) -> None:
        self.config = config or DatabaseMaintenanceSettings()
        self.timeout = self.config.timeout_seconds

    @classmethod
    def from_settings(cls, settings: Settings) -> DatabaseMaintenance:
        return cls(cls.playbook_settings(settings, DatabaseMaintenanceSettings))

    def parse_parameters(self, raw: Mapping[str, Any]) -> BaseModel:
        params = super().parse_parameters(raw)
        assert isinstance(params, DatabaseParameters)
        names = self.config.names()
        if params.database is not None and params.database not in names:
            configured = ", ".join(names) if names else "none"
            raise ParameterError(
                self.name, "database", f"not a configured database (configured: {configured})"
            )
        return params

    def target(self, params: BaseModel) -> str:
        assert isinstance(params, DatabaseParameters)
        return params.database or "all"

    def _selected(
        self, params: BaseModel
    ) -> tuple[tuple[PostgresTarget, ...], tuple[RedisTarget, ...]]:
        assert isinstance(params, DatabaseParameters)
        wanted = params.database
        return (
            tuple(t for t in self.config.postgres if wanted in (None, t.name)),
            tuple(t for t in self.config.redis if wanted in (None, t.name)),
        )

    # --- plan ---------------------------------------------------------------------------

    def plan(self, ctx: Context, params: BaseModel) -> Plan:
        """Name every statement and command; PostgreSQL statistics are read to find the tables."""
        postgres_targets, redis_targets = self._selected(params)
        if not postgres_targets and not redis_targets:
            return Plan(
                (Action("nothing to do: no database is configured in database-maintenance"),),
                summary="no database configured",
            )
        actions: list[Action] = []
        planned: dict[str, dict[str, Any]] = {}
        for target in postgres_targets:
            found = _find_tables(ctx, target)
            planned[target.name] = found
            actions.extend(_postgres_actions(target, found))
        for redis_target in redis_targets:
            actions.extend(_redis_actions(redis_target))
        tables = sum(len(found.get("tables", ())) for found in planned.values())
        unreachable = [name for name, found in planned.items() if "error" in found]
        summary = f"{tables} table(s) to vacuum in {len(postgres_targets)} PostgreSQL database(s)"
        summary += f", {len(redis_targets)} Redis server(s) to analyse"
        if unreachable:
            summary += f"; unreachable: {', '.join(unreachable)}"
        return Plan(tuple(actions), summary=summary, data={"postgres": planned})

    # --- execute ------------------------------------------------------------------------

    def execute(self, ctx: Context, plan: Plan, params: BaseModel) -> Result:
        postgres_targets, redis_targets = self._selected(params)
        if not postgres_targets and not redis_targets:
            return Result("skipped", "no database is configured in database-maintenance")
        planned: dict[str, dict[str, Any]] = dict(plan.data.get("postgres", {}))
        outcomes: list[Outcome] = []
        for target in postgres_targets:
            _check_deadline(ctx)
            outcomes.append(_maintain_postgres(ctx, target, planned.get(target.name, {})))
        for redis_target in redis_targets:
            _check_deadline(ctx)
            outcomes.append(_analyse_redis(ctx, redis_target))
        failed = [outcome for outcome in outcomes if not outcome.ok]
        return Result(
            "failure" if failed else "success",
            summary="; ".join(f"{outcome.name}: {outcome.summary}" for outcome in outcomes),
            actions=tuple(ctx.log),
            impacts=tuple(impact for outcome in outcomes for impact in outcome.impacts),
            stdout="\n".join(line for outcome in outcomes for line in outcome.output),
            stderr="\n".join(f"{outcome.name}: {outcome.summary}" for outcome in failed),
            details={
                "postgres": {
                    o.name: o.details for o in outcomes if o.details.get("kind") == "postgres"
                },
                "redis": {o.name: o.details for o in outcomes if o.details.get("kind") == "redis"},
            },
        )


# --- PostgreSQL -------------------------------------------------------------------------


def _check_deadline(ctx: Context) -> None:
    if ctx.remaining() <= 0:
        raise PlaybookTimeout("the playbook's timeout passed during database maintenance")


def _connect(ctx: Context, target: PostgresTarget) -> PostgresClient:
    from remediate.system import postgres

    remaining = ctx.remaining()
    return postgres.PostgresClient.connect(
        target.dsn.get_secret_value(),
        connect_timeout=min(target.connect_timeout_seconds, remaining),
        statement_timeout=min(target.statement_timeout_seconds, remaining),
    )


def _find_tables(ctx: Context, target: PostgresTarget) -> dict[str, Any]:
    """Tables over both thresholds, or the reason the database could not be read."""
    from remediate.system import postgres

    _check_deadline(ctx)
    dsn = target.dsn.get_secret_value()
    try:
        with _connect(ctx, target) as client:
            tables = client.tables_over(
                dead_tuples=target.dead_tuple_threshold,
                dead_ratio=target.dead_ratio_threshold,
                limit=target.max_tables,
            )
    except postgres.PostgresError as error:
        _check_deadline(ctx)
        return {
            "server": postgres.describe_dsn(dsn),
            "error": postgres.redact(error.message, postgres.dsn_password(dsn)),
        }
    return {
        "server": postgres.describe_dsn(dsn),
        "tables": [
            {
                "schema": table.schema,
                "table": table.table,
                "dead_tuples": table.dead_tuples,
                "live_tuples": table.live_tuples,
                "total_bytes": table.total_bytes,
            }
            for table in tables
        ],
    }


def _postgres_actions(target: PostgresTarget, found: dict[str, Any]) -> list[Action]:
    from remediate.system import postgres

    prefix = f"{target.name} ({found['server']})"
    if "error" in found:
        return [Action(f"{prefix}: cannot plan, the database is unreachable: {found['error']}")]
    if not found["tables"]:
        return [
            Action(
                f"{prefix}: no table over {target.dead_tuple_threshold} dead tuples and "
                f"{target.dead_ratio_threshold:.0%} dead; nothing to vacuum"
            )
        ]
    actions = []
    for table in found["tables"]:
        dead, live = table["dead_tuples"], table["live_tuples"]
        ratio = dead / (dead + live) if dead + live else 0.0
        statement = postgres.statement_text(
            postgres.vacuum_statement(table["schema"], table["table"])
        )
        actions.append(
            Action(
                f"{prefix}: {statement}; -- {dead} dead tuples ({ratio:.0%}), "
                f"{_size(table['total_bytes'])}"
            )
        )
        if target.reindex:
            reindex = postgres.statement_text(
                postgres.reindex_statement(table["schema"], table["table"])
            )
            actions.append(Action(f"{prefix}: {reindex};"))
    return actions


def _maintain_postgres(ctx: Context, target: PostgresTarget, found: dict[str, Any]) -> Outcome:
    from remediate.system import postgres

    dsn = target.dsn.get_secret_value()
    details: dict[str, Any] = {
        "kind": "postgres",
        "server": postgres.describe_dsn(dsn),
        "tables": [],
    }
    if "error" in found:
        # The plan already tried once; trying again now would only add to a sick server's load.
        details["error"] = found["error"]
        ctx.log.append(f"{target.name}: unreachable, nothing done")
        return Outcome(target.name, False, f"unreachable: {found['error']}", details)
    tables = found.get("tables", [])
    if not tables:
        ctx.log.append(f"{target.name}: no table over the dead-tuple threshold")
        return Outcome(
            target.name,
            True,
            "no table over the dead-tuple threshold",
            details,
            impacts=[Impact("rows_removed", 0, target.name)],
        )
    errors: list[str] = []
    output: list[str] = []
    try:
        with _connect(ctx, target) as client:
            for table in tables:
                _check_deadline(ctx)
                report = _vacuum_table(ctx, client, target, table["schema"], table["table"])
                details["tables"].append(report)
                if "error" in report:
                    errors.append(f"{report['table']}: {report['error']}")
                    if report.get("connection_lost"):
                        break
                elif "vacuum_report" in report:
                    output.append(f"{target.name} {report['table']}: {report['vacuum_report']}")
    except postgres.PostgresError as error:
        _check_deadline(ctx)
        errors.append(postgres.redact(error.message, postgres.dsn_password(dsn)))
    done = [report for report in details["tables"] if "rows_removed" in report]
    removed = sum(report["rows_removed"] for report in done)
    before = sum(report["bytes_before"] for report in done)
    after = sum(report["bytes_after"] for report in done)
    details.update(rows_removed=removed, bytes_before=before, bytes_after=after)
    # A database we could not vacuum reports no figure rather than a misleading zero.
    impacts = [Impact("rows_removed", removed, target.name)] if done or not errors else []
    if before > after:
        impacts.append(Impact("bytes_reclaimed", before - after, f"postgres:{target.name}"))
    summary = (
        f"{removed} dead rows removed from {len(done)} table(s), {_size(before)} -> {_size(after)}"
    )
    if errors:
        details["errors"] = errors
        summary += f"; failed: {'; '.join(errors)}"
    return Outcome(target.name, not errors, summary, details, impacts, output)


def _vacuum_table(
    ctx: Context, client: PostgresClient, target: PostgresTarget, schema: str, table: str
) -> dict[str, Any]:
    """VACUUM one table (and REINDEX it when configured); its figures before and after."""
    from remediate.system import postgres

    name = f"{schema}.{table}"
    try:
        before = client.table(schema, table)
        if before is None:
            ctx.log.append(f"{target.name}: {name} no longer exists, skipped")
            return {"table": name, "skipped": "the table no longer exists"}
        outcome = client.vacuum(schema, table)
        vacuum = postgres.statement_text(postgres.vacuum_statement(schema, table))
        ctx.log.append(f"{target.name}: {vacuum}")
        if outcome.warnings and outcome.rows_removed is None:
            return {"table": name, "error": " ".join(outcome.warnings)}
        if target.reindex:
            client.reindex(schema, table)
            reindex = postgres.statement_text(postgres.reindex_statement(schema, table))
            ctx.log.append(f"{target.name}: {reindex}")
        after = client.table(schema, table) or before
    except postgres.PostgresError as error:
        if error.cancelled:
            _check_deadline(ctx)
        return {"table": name, "error": error.message, "connection_lost": error.connection_lost}
    return _table_report(name, before, after, outcome.rows_removed, outcome.report)


def _table_report(
    name: str,
    before: TableStatistics,
    after: TableStatistics,
    reported: int | None,
    vacuum_report: str,
) -> dict[str, Any]:
    # VACUUM VERBOSE's own count is exact; the statistics counters are updated
    # asynchronously by other sessions, so their difference is only the fallback.
    counted = max(0, before.dead_tuples - after.dead_tuples)
    tuples_line = next(
        (line for line in vacuum_report.splitlines() if line.startswith("tuples:")), ""
    )
    return {
        "table": name,
        "rows_removed": reported if reported is not None else counted,
        "rows_removed_from": "vacuum verbose" if reported is not None else "statistics",
        "dead_tuples_before": before.dead_tuples,
        "dead_tuples_after": after.dead_tuples,
        "live_tuples": after.live_tuples,
        "bytes_before": before.total_bytes,
        "bytes_after": after.total_bytes,
        **({"vacuum_report": tuples_line} if tuples_line else {}),
    }


# --- Redis ------------------------------------------------------------------------------


def _redis_actions(target: RedisTarget) -> list[Action]:
    from remediate.system import redis as redis_client

    prefix = f"{target.name} ({redis_client.describe_url(target.url.get_secret_value())})"
    actions = [
        Action(f"{prefix}: INFO memory (mem_fragmentation_ratio, used_memory)"),
        Action(f"{prefix}: MEMORY DOCTOR"),
    ]
    if target.sample_keys and target.top_keys:
        actions.append(
            Action(
                f"{prefix}: DBSIZE, then SCAN cursor COUNT 100 until {target.sample_keys} "
                f"keys are sampled, then MEMORY USAGE of each; report the {target.top_keys} "
                "biggest"
            )
        )
    if target.purge:
        actions.append(
            Action(
                f"{prefix}: MEMORY PURGE if mem_fragmentation_ratio > "
                f"{target.fragmentation_threshold}, then INFO memory again"
            )
        )
    else:
        actions.append(Action(f"{prefix}: purge disabled, MEMORY PURGE is never sent"))
    return actions


def _analyse_redis(ctx: Context, target: RedisTarget) -> Outcome:
    from remediate.system import redis as redis_client

    url = target.url.get_secret_value()
    details: dict[str, Any] = {"kind": "redis", "server": redis_client.describe_url(url)}
    try:
        with redis_client.RedisClient.connect(
            url, timeout=min(target.timeout_seconds, ctx.remaining())
        ) as client:
            memory = client.memory_info()
            ctx.log.append(f"{target.name}: INFO memory")
            doctor = client.doctor()
            ctx.log.append(f"{target.name}: MEMORY DOCTOR")
            top: list[dict[str, Any]] = []
            sampled = 0
            if target.sample_keys and target.top_keys:
                total = client.key_count()
                keys = client.sample_keys(target.sample_keys)
                sampled = len(keys)
                sizes = sorted(client.key_sizes(keys), key=lambda size: (-size.bytes, size.key))
                top = [{"key": size.key, "bytes": size.bytes} for size in sizes[: target.top_keys]]
                ctx.log.append(
                    f"{target.name}: SCAN sampled {sampled} of {total} keys, MEMORY USAGE of each"
                )
                details["keys"] = total
            details.update(
                fragmentation_ratio=memory.fragmentation_ratio,
                used_memory=memory.used_memory,
                used_memory_rss=memory.used_memory_rss,
                allocator=memory.allocator,
                doctor=doctor[:DOCTOR_EXCERPT],
                sampled_keys=sampled,
                top_keys=top,
                purged=False,
            )
            over = memory.fragmentation_ratio > target.fragmentation_threshold
            summary = (
                f"fragmentation {memory.fragmentation_ratio:.2f} "
                f"({'over' if over else 'within'} {target.fragmentation_threshold})"
            )
            if over and target.purge:
                client.purge()
                ctx.log.append(f"{target.name}: MEMORY PURGE")
                after = client.memory_info()
                details.update(
                    purged=True,
                    fragmentation_ratio_after=after.fragmentation_ratio,
                    used_memory_rss_after=after.used_memory_rss,
                )
                summary += (
                    f", MEMORY PURGE sent: ratio {after.fragmentation_ratio:.2f}, RSS "
                    f"{_size(memory.used_memory_rss)} -> {_size(after.used_memory_rss)}"
                )
            elif over:
                summary += ", purge disabled"
    except redis_client.RedisError as error:
        if error.timed_out:
            _check_deadline(ctx)
        details["error"] = error.message
        return Outcome(target.name, False, f"failed: {error.message}", details)
    if top:
        summary += (
            f"; biggest key {top[0]['key']!r} {_size(top[0]['bytes'])} "
            f"(in a sample of {details['sampled_keys']} of {details['keys']} keys)"
        )
    output = [f"{target.name}: {summary}", *doctor.splitlines()[:5]]
    return Outcome(target.name, True, summary, details, output=output)


def _size(count: float) -> str:
    """Bytes for people: 512 B, 208.0 KiB, 31.3 MiB."""
    if abs(count) < 1024:
        return f"{count:.0f} B"
    for unit in ("KiB", "MiB"):
        count /= 1024
        if abs(count) < 1024:
            return f"{count:.1f} {unit}"
    return f"{count / 1024:.1f} GiB"
