"""The store: SQLite (WAL) by default, PostgreSQL with `state.url: postgresql://...`."""

from remediate.store.store import GateView, Store

__all__ = ["GateView", "Store"]
