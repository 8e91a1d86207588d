"""`remediate serve`: uvicorn (uvloop, httptools) around the Starlette app."""

from __future__ import annotations

import gc
import ipaddress
import logging
import os
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from remediate.config.models import Settings
from remediate.errors import RemediateError, UsageError

if TYPE_CHECKING:
    from collections.abc import Callable

    from remediate.store import Store

WARM_UP_DELAY_SECONDS = 0.5


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def resolve_token(settings: Settings, token_file: Path | None) -> str | None:
    if token_file is not None:
        try:
            return token_file.read_text().strip() or None
        except OSError as error:
            raise UsageError(f"cannot read --token-file {token_file}: {error.strerror}") from None
    return os.environ.get("REMEDIATE_WEBHOOK_TOKEN") or settings.server.token


def serve(
    settings: Settings,
    *,
    config_path: Path | None = None,
    bind: str | None = None,
    port: int | None = None,
    token_file: Path | None = None,
) -> None:
    host = bind or settings.server.bind
    token = resolve_token(settings, token_file)
    if not is_loopback(host) and not token:
        raise UsageError(
            f"refusing to bind {host} without a webhook token: set server.token, "
            "$REMEDIATE_WEBHOOK_TOKEN or --token-file, or bind 127.0.0.1"
        )
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)  # migrations log every step
    # The event loop and the group-commit writer hand work to each other many times a
    # second; with the default 5 ms GIL switch interval each handoff can wait a whole
    # interval while the other thread holds the GIL.
    sys.setswitchinterval(0.0005)
    # Start-up creates about 100,000 objects the collector tracks and almost no garbage:
    # nearly all of them live as long as the process. Collecting while they are being
    # created is wasted work (tens of milliseconds of the start-up); they are frozen
    # below, once built, and the collector is turned back on.
    gc.disable()
    try:
        _serve(settings, host, port, token, config_path=config_path)
    finally:
        gc.enable()


# Imported by uvicorn and anyio as the server starts, and for the first /health answer.
SERVING_MODULES = (
    "uvloop",
    "httptools",
    "encodings.idna",
    "uvicorn.loops.uvloop",
    "uvicorn.protocols.http.httptools_impl",
    "uvicorn.lifespan.on",
    "anyio._backends._asyncio",
    "remediate.status",
)


def _import_ahead() -> None:
    """Import SERVING_MODULES now, while the store opens, instead of after it."""
    from contextlib import suppress
    from importlib import import_module

    for name in SERVING_MODULES:
        # Another version's layout: the module is imported where it is needed, as before.
        with suppress(ImportError):
            import_module(name)


class _Opening:
    """The settings' store, opened in a thread of its own while `serve` imports the
    server: the connection and, on a new database, the schema are mostly waiting on the
    database (on PostgreSQL about 80 ms of the server's own work). The driver is
    imported first, here: importing it is work for this same core, not waiting."""

    def __init__(self, settings: Settings) -> None:
        from remediate.runtime import open_store

        if settings.state.resolved_url().startswith("postgresql"):
            import psycopg  # noqa: F401

        self._store: Store | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(
            target=self._open, args=(open_store, settings), name="remediate-open", daemon=True
        )
        self._thread.start()

    def _open(self, open_store: Callable[[Settings], Store], settings: Settings) -> None:
        try:
            self._store = open_store(settings)
        except BaseException as error:  # raised again in the thread that asks for it
            self._error = error

    def store(self) -> Store:
        self._thread.join()
        if self._error is not None:
            raise self._error
        assert self._store is not None
        return self._store


def _serve(
    settings: Settings, host: str, port: int | None, token: str | None, *, config_path: Path | None
) -> None:
    """Build the runtime, the app and the background threads, then serve until stopped."""
    opening = _Opening(settings)
    import uvicorn

    from remediate.pipeline.worker import Worker
    from remediate.playbooks.registry import Registry
    from remediate.runtime import Runtime
    from remediate.webhook.app import create_app

    # What needs no store is done while it opens: on a new PostgreSQL database its schema
    # keeps the database server busy for tens of milliseconds, time this core would
    # otherwise spend waiting before doing the same work.
    registry = Registry.from_settings(settings)
    _import_ahead()
    runtime = Runtime.build(
        settings, config_path=config_path, store=opening.store(), registry=registry
    )
    interrupted = runtime.pipeline.recover()
    if interrupted:
        logging.getLogger("remediate").warning(
            "marked %d execution(s) interrupted: %s", len(interrupted), interrupted
        )
    # Deciding, running, recording, scrapes and samples need no SQLAlchemy (about 12 MB
    # and 100 ms to import): only chain runs, approvals, the decision history and
    # reports do. When a route or an embedded schedule names a chain, SQLAlchemy is
    # imported in the background a moment after the server is up, so the first chain
    # run does not stall every alert behind it. The node-exporter textfile is then written: over a
    # long history that first count takes seconds, and alerts must not wait for it.
    stopping = threading.Event()
    chains_routed = any(route.chain for route in settings.routes) or (
        settings.schedules.runner == "embedded"
        and any(schedule.chain for schedule in settings.schedules.items)
    )

    def warm_up() -> None:
        if stopping.wait(WARM_UP_DELAY_SECONDS):
            return
        try:
            if chains_routed:
                runtime.store.prepare()
                gc.freeze()
            runtime.write_textfile()
        except RemediateError as error:  # a broken store: /health says so, and each retries
            logging.getLogger("remediate").warning("warm-up: %s", error.message)

    threading.Thread(target=warm_up, name="remediate-warm-up", daemon=True).start()
    worker = Worker(runtime.pipeline)
    log = logging.getLogger("remediate")
    actual_port = settings.server.port if port is None else port
    log.info(
        "remediate serving on http://%s:%d (webhook %s)",
        host,
        actual_port,
        "with token" if token else "without token: loopback only",
    )
    from remediate.autonomous.sampler import Sampler

    sampler = Sampler(settings, runtime.store, clock=runtime.clock)
    sampler.start()
    scheduler = None
    if settings.schedules.runner == "embedded":
        from remediate.autonomous.embedded import EmbeddedScheduler, fire

        scheduler = EmbeddedScheduler(
            settings, fire=lambda schedule: fire(runtime, schedule), clock=runtime.clock
        )
        scheduler.start()
    app = create_app(runtime, token=token, worker=worker)
    from remediate.webhook.protocol import protocol_class

    http = protocol_class(settings.server.header_timeout_seconds)
    # Everything imported and built at start lives as long as the process: move it out of
    # the collector's sight, so full collections under load stay short.
    gc.freeze()
    gc.enable()
    try:
        uvicorn.run(
            app,
            host=host,
            port=actual_port,
            loop="uvloop",
            # uvicorn's httptools protocol, with a deadline on each request's head.
            http=http,
            ws="none",  # no websocket routes: skip loading a websocket implementation
            # No X-Forwarded-* rewriting (nothing here reads the client address) and no
            # Server header: less work on every answer of an alert storm.
            proxy_headers=False,
            server_header=False,
            log_level="warning",
            access_log=False,
            timeout_graceful_shutdown=10,
        )
    finally:
        stopping.set()
        if scheduler is not None:
            scheduler.stop()
        sampler.stop()
        runtime.close()
