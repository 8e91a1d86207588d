"""The store: SQLite (WAL) by default, PostgreSQL with `state.url: postgresql://...`."""

from remediate.store.store import GateView, Sql, Store

__all__ = ["GateView", "Sql", "Store"]
