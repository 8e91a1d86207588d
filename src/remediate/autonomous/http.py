"""The one HTTP client of the autonomous package: GET a JSON document with a timeout.

Prometheus and Alertmanager are read through `get_json`; every failure (refused,
timeout, HTTP error, not JSON) becomes one `HttpError` that names the URL.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from typing import Any

from remediate.errors import RemediateError

MAX_BODY_BYTES = 32 * 1024 * 1024


class HttpError(RemediateError):
    """A GET that did not give a JSON document; `retryable`: the server may come back."""

    retryable = True


def get_json(base: str, path: str, params: Mapping[str, str], *, timeout: float) -> Any:
    """GET base+path?params and parse the JSON body; errors name what was asked."""
    if not base.startswith(("http://", "https://")):
        raise HttpError(f"{base!r} is not an http:// or https:// URL")
    url = base.rstrip("/") + path
    if params:
        url += "?" + urllib.parse.urlencode(params)
    request = urllib.request.Request(url, headers={"Accept": "application/json"})  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            body = response.read(MAX_BODY_BYTES + 1)
    except urllib.error.HTTPError as error:
        detail = _error_detail(error)
        raise HttpError(f"GET {url} answered {error.code}{detail}") from None
    except TimeoutError:
        raise HttpError(f"GET {url} timed out after {timeout:g}s") from None
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        raise HttpError(f"GET {url} failed: {reason}") from None
    if len(body) > MAX_BODY_BYTES:
        raise HttpError(f"GET {url}: the answer is larger than {MAX_BODY_BYTES} bytes")
    try:
        return json.loads(body)
    except ValueError as error:
        raise HttpError(f"GET {url}: the answer is not JSON ({error})") from None


def _error_detail(error: urllib.error.HTTPError) -> str:
    # Prometheus explains a bad query in the body: {"status":"error","error":"..."}.
    try:
        data = json.loads(error.read(65536))
    except (ValueError, OSError):
        return ""
    if isinstance(data, dict) and isinstance(data.get("error"), str):
        return f": {data['error']}"
    return ""
