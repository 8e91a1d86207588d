"""The HTTP side of `remediate serve`: health and metrics (the webhook joins them)."""

from __future__ import annotations

from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from remediate.errors import StoreError
from remediate.runtime import Runtime

CONTENT_TYPE_LATEST = "text/plain; version=0.0.4; charset=utf-8"


def create_app(runtime: Runtime) -> Starlette:
    async def health(request: Request) -> Response:
        try:
            body = await run_in_threadpool(_health, runtime)
        except StoreError as error:
            return JSONResponse({"status": "unhealthy", "store": str(error)}, status_code=503)
        return JSONResponse(body)

    async def metrics(request: Request) -> Response:
        from remediate.metrics import exposition

        try:
            payload = await run_in_threadpool(exposition, runtime.metrics)
        except StoreError as error:
            return Response(f"# store unavailable: {error}\n", status_code=503)
        return Response(payload, media_type=CONTENT_TYPE_LATEST)

    return Starlette(
        routes=[
            Route("/health", health, methods=["GET"]),
            Route("/metrics", metrics, methods=["GET"]),
        ]
    )


def _health(runtime: Runtime) -> dict[str, Any]:
    runtime.store.ping()
    paused = runtime.store.flag("paused")
    return {
        "status": "ok",
        "store": "ok",
        "paused": bool(paused),
        "queue_depth": len(runtime.store.queued()),
    }
