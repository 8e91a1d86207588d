"""What every report counts, read once: a window's executions and impact figures in groups.

Executions are counted per playbook, source and status, impact figures per kind, subject and
playbook, each in slices of the window (`Window.slices`: the whole window, its weeks or its
days, always split at its middle). The reports add these few hundred groups up in Python:
effectiveness per playbook, trends per week and half, ROI per playbook and source, the monthly
charts per day; `monthly` reads them once for all four reports.

Why groups in slices: these are the leading columns of the report indexes (migration 0007),
and a slice is read as one index range per combination of their values (`IN` lists of the
values a loose index scan finds), so the rows arrive grouped and SQLite adds them up in one
pass in index order. A `GROUP BY` over the window in any other order makes SQLite sort a
month of rows first, several times slower over a million executions; PostgreSQL hashes
either way. Sums of durations may differ from one `SUM` over the rows in the last bits of a
double (they are added in another order); counts and integral figures are exact.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import sqlalchemy as sa

from remediate.analytics.window import Slice, Window
from remediate.config.models import Analytics
from remediate.store import Store
from remediate.store import tables as t

# Union parts per statement: SQLite allows 500 terms in a compound SELECT.
PARTS_PER_STATEMENT = 64

Key = TypeVar("Key", bound=Hashable)
Result = TypeVar("Result")


@dataclass(frozen=True)
class Runs:
    """Executions of one playbook, source and status admitted in one slice of the window."""

    slice: Slice
    playbook: str
    source: str
    status: str
    count: int
    first_attempts: int
    duration_sum: float
    durations: int  # how many of them have a duration
    # Sum of max(0, manual baseline - duration): the time each would save as an avoided
    # intervention (ROI); 0 when the summary was read without a baseline.
    saving_sum: float


@dataclass(frozen=True)
class Figures:
    """Impact figures of one kind, subject and playbook reported in one slice of the window."""

    slice: Slice
    kind: str
    subject: str
    playbook: str
    count: int
    positive: int
    total: float


@dataclass
class Totals:
    """Runs added up."""

    count: int = 0
    first_attempts: int = 0
    duration_sum: float = 0.0
    durations: int = 0
    saving_sum: float = 0.0

    def add(self, runs: Runs) -> None:
        self.count += runs.count
        self.first_attempts += runs.first_attempts
        self.duration_sum += runs.duration_sum
        self.durations += runs.durations
        self.saving_sum += runs.saving_sum

    @property
    def mean_duration(self) -> float | None:
        return self.duration_sum / self.durations if self.durations else None


@dataclass(frozen=True)
class Summary:
    """A window's runs and figures, with the slicing and manual baselines they were read with."""

    window: Window
    width: float | None  # the slices' width (None: the window, split at its middle)
    analytics: Analytics | None  # whose manual baselines priced `Runs.saving_sum`
    kinds: tuple[str, ...]  # the impact kinds read into `figures`
    # Every (playbook, source, status) of the store's executions, of any time.
    run_keys: tuple[tuple[str, str, str], ...]
    runs: tuple[Runs, ...]
    figures: tuple[Figures, ...]

    def totals(
        self, key: Callable[[Runs], Key], keep: Callable[[Runs], bool] = lambda _: True
    ) -> dict[Key, Totals]:
        """The runs `keep` accepts, added up per `key`."""
        found: dict[Key, Totals] = {}
        for runs in self.runs:
            if keep(runs):
                found.setdefault(key(runs), Totals()).add(runs)
        return found


def summarize(
    connection: sa.Connection,
    window: Window,
    *,
    width: float | None = None,
    analytics: Analytics | None = None,
    kinds: Sequence[str] = (),
    playbook: str | None = None,
) -> Summary:
    """Read the window's runs (of `playbook` only, if given) and its figures of `kinds`.

    width: cut the window every so many seconds (WEEK for trends, DAY for daily charts);
    analytics: price each run's saving against these manual baselines.
    """
    slices = window.slices(width)
    e, i = t.executions, t.impacts
    where = () if playbook is None else (e.c.playbook == playbook,)
    keys = index_keys(connection, (e.c.playbook, e.c.source, e.c.status), where)
    rows = _read(connection, list(_runs_parts(slices, keys, analytics)))
    runs = tuple(
        Runs(
            slices[index],
            name,
            source,
            status,
            int(count),
            int(first or 0),
            float(spent or 0),
            int(durations),
            float(saving or 0),
        )
        for index, name, source, status, count, first, spent, durations, saving in rows
    )
    figures: tuple[Figures, ...] = ()
    if kinds:
        found = [
            (kind, *key)
            for kind in sorted(kinds)
            for key in index_keys(connection, (i.c.subject, i.c.playbook), (i.c.kind == kind,))
        ]
        rows = _read(connection, list(_figures_parts(slices, found)))
        figures = tuple(
            Figures(
                slices[index],
                kind,
                subject,
                name,
                int(count),
                int(positive or 0),
                float(total or 0),
            )
            for index, kind, subject, name, count, positive, total in rows
        )
    return Summary(window, width, analytics, tuple(kinds), tuple(keys), runs, figures)


def _runs_parts(
    slices: Sequence[Slice], keys: Sequence[tuple[Any, ...]], analytics: Analytics | None
) -> Iterator[sa.Select[Any]]:
    e = t.executions
    if not keys:
        return
    playbooks, sources, statuses = (sorted({key[n] for key in keys}) for n in range(3))
    saving = _saving(analytics)
    for index, piece in enumerate(slices):
        yield (
            sa.select(
                sa.literal(index),
                e.c.playbook,
                e.c.source,
                e.c.status,
                sa.func.count(),
                sa.func.sum(sa.case((e.c.attempt == 1, 1), else_=0)),
                sa.func.sum(e.c.duration_seconds),
                sa.func.count(e.c.duration_seconds),
                sa.func.sum(saving),
            )
            .where(
                e.c.playbook.in_(playbooks),
                e.c.source.in_(sources),
                e.c.status.in_(statuses),
                piece.contains(e.c.admitted_at),
            )
            .group_by(e.c.playbook, e.c.source, e.c.status)
        )


def _saving(analytics: Analytics | None) -> sa.ColumnElement[float]:
    """max(0, the playbook's manual baseline - the run's duration), in seconds, per row."""
    if analytics is None:
        return sa.literal(0.0, sa.Float)
    e = t.executions
    default = analytics.default_manual_minutes * 60
    baseline: sa.ColumnElement[float] = (
        sa.case(
            {name: minutes * 60 for name, minutes in analytics.manual_minutes.items()},
            value=e.c.playbook,
            else_=default,
        )
        if analytics.manual_minutes
        else sa.literal(default, sa.Float)
    )
    duration = sa.func.coalesce(e.c.duration_seconds, 0.0)
    return sa.case((baseline > duration, baseline - duration), else_=0.0)


def _figures_parts(
    slices: Sequence[Slice], keys: Sequence[tuple[Any, ...]]
) -> Iterator[sa.Select[Any]]:
    i = t.impacts
    if not keys:
        return
    kinds, subjects, playbooks = (sorted({key[n] for key in keys}) for n in range(3))
    for index, piece in enumerate(slices):
        yield (
            sa.select(
                sa.literal(index),
                i.c.kind,
                i.c.subject,
                i.c.playbook,
                sa.func.count(),
                sa.func.sum(sa.case((i.c.value > 0, 1), else_=0)),
                sa.func.sum(i.c.value),
            )
            .where(
                i.c.kind.in_(kinds),
                i.c.subject.in_(subjects),
                i.c.playbook.in_(playbooks),
                piece.contains(i.c.at),
            )
            .group_by(i.c.kind, i.c.subject, i.c.playbook)
        )


def _read(connection: sa.Connection, parts: Sequence[sa.Select[Any]]) -> list[tuple[Any, ...]]:
    """The rows of every part, a few dozen parts to a UNION ALL statement."""
    rows: list[tuple[Any, ...]] = []
    for first in range(0, len(parts), PARTS_PER_STATEMENT):
        batch = parts[first : first + PARTS_PER_STATEMENT]
        statement = batch[0] if len(batch) == 1 else sa.union_all(*batch)
        rows += [tuple(row) for row in connection.execute(statement)]
    return rows


def index_keys(
    connection: sa.Connection,
    columns: Sequence[sa.Column[Any]],
    where: Sequence[sa.ColumnElement[bool]] = (),
) -> list[tuple[Any, ...]]:
    """Every combination of values of an index's leading `columns` that occurs: a loose index
    scan, one seek per value (`min(column) WHERE column > previous`), never a pass over rows."""
    if not columns:
        return [()]
    column, rest = columns[0], columns[1:]
    keys: list[tuple[Any, ...]] = []
    query = sa.select(sa.func.min(column)).where(*where)
    value = connection.execute(query).scalar()
    while value is not None:
        keys += [(value, *tail) for tail in index_keys(connection, rest, (*where, column == value))]
        value = connection.execute(query.where(column > value)).scalar()
    return keys


@contextmanager
def alongside(store: Store, work: Callable[[], Result]) -> Iterator[Callable[[], Result]]:
    """Run `work` (a read on a connection of its own) on another thread while the caller
    reads on; yields a function that waits for its result. SQLite and psycopg release the
    GIL while a statement runs, so on two cores both reads go at once. In-memory SQLite,
    where another connection is another database, runs `work` first, on this thread."""
    if store.is_sqlite and store.engine.url.database in (None, "", ":memory:"):
        result = work()
        yield lambda: result
        return
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="report") as pool:
        yield pool.submit(work).result
