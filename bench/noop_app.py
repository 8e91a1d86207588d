"""The ceiling: a no-op Starlette app on uvicorn (uvloop, httptools) that reads the body
and answers a fixed JSON, measured in the same run as remediate."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route


async def webhook(request: Request) -> JSONResponse:
    await request.body()
    return JSONResponse({"status": "processed", "alerts_received": 1, "results": []})


async def health(request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


app = Starlette(routes=[Route("/webhook", webhook, methods=["POST"]), Route("/health", health)])
