"""A thin Redis client for memory analysis: INFO memory, MEMORY DOCTOR, a bounded key sample.

A `redis.Redis(host=...)` client retries a failed command by default (ten
reconnects to a server that never answers, measured here with redis-py 8.1);
maintenance must not hammer a sick server, so this client says explicitly: one
connection attempt, no retries.

    with RedisClient.connect("redis://127.0.0.1:6379/0", timeout=5) as client:
        memory = client.memory_info()
        biggest = client.biggest_keys(client.sample_keys(1000), top=10)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

import redis
from redis.backoff import NoBackoff
from redis.exceptions import RedisError as _ClientError
from redis.exceptions import TimeoutError as _ClientTimeout
from redis.retry import Retry

from remediate.errors import RemediateError

__all__ = [
    "KeySize",
    "MemoryInfo",
    "RedisClient",
    "RedisError",
    "describe_url",
    "parse_memory_info",
    "printable_key",
    "url_password",
]

SCAN_BATCH = 100


class RedisError(RemediateError):
    """A command failed or its reply made no sense; the message names the command."""

    def __init__(self, message: str, *, timed_out: bool = False) -> None:
        super().__init__(message)
        self.timed_out = timed_out


@dataclass(frozen=True)
class MemoryInfo:
    fragmentation_ratio: float
    used_memory: int
    used_memory_rss: int
    allocator: str


@dataclass(frozen=True)
class KeySize:
    key: str  # printable form of the key (keys are arbitrary bytes)
    bytes: int


def url_password(url: str) -> str | None:
    try:
        return urlsplit(url).password or None
    except ValueError:
        return None


def describe_url(url: str) -> str:
    """`host:port/db` (or the socket path), never the password."""
    try:
        parts = urlsplit(url)
        port = parts.port or 6379
    except ValueError:
        return "<invalid url>"
    if parts.scheme == "unix":
        return parts.path
    database = parts.path.lstrip("/") or "0"
    return f"{parts.hostname or 'localhost'}:{port}/{database}"


def printable_key(key: bytes, limit: int = 200) -> str:
    """A key as text safe for a terminal and a log line: non-printables escaped, bounded."""
    text = key.decode("utf-8", errors="backslashreplace")
    escaped = "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in text)
    return escaped if len(escaped) <= limit else escaped[: limit - 1] + "…"


def parse_memory_info(reply: Mapping[str, Any]) -> MemoryInfo:
    """The figures we decide on from an `INFO memory` reply; a reply without them is an error."""
    try:
        return MemoryInfo(
            fragmentation_ratio=float(reply["mem_fragmentation_ratio"]),
            used_memory=int(reply["used_memory"]),
            used_memory_rss=int(reply["used_memory_rss"]),
            allocator=str(reply.get("mem_allocator", "unknown")),
        )
    except (KeyError, TypeError, ValueError) as error:
        raise RedisError(
            f"INFO memory: cannot read the reply ({type(error).__name__}: {error}); "
            "expected mem_fragmentation_ratio, used_memory and used_memory_rss"
        ) from None


class RedisClient:
    """One connection, one attempt, timeouts on connect and on every reply."""

    def __init__(self, client: redis.Redis, *, password: str | None = None) -> None:
        self._client = client
        self._password = password

    @classmethod
    def connect(cls, url: str, *, timeout: float) -> RedisClient:
        password = url_password(url)
        client = cls(
            redis.Redis.from_url(
                url,
                socket_connect_timeout=timeout,
                socket_timeout=timeout,
                retry=Retry(NoBackoff(), 0),
                health_check_interval=0,
                decode_responses=False,
            ),
            password=password,
        )
        client._call("PING", client._client.ping)
        return client

    def __enter__(self) -> RedisClient:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._client.close()

    def _call(self, command: str, function: Callable[..., Any], *args: Any) -> Any:
        try:
            return function(*args)
        except _ClientError as error:
            reason = " ".join(str(error).split())
            if self._password:
                reason = reason.replace(self._password, "***")
            raise RedisError(
                f"{command}: {reason}", timed_out=isinstance(error, _ClientTimeout)
            ) from None

    def memory_info(self) -> MemoryInfo:
        reply = self._call("INFO memory", self._client.info, "memory")
        if not isinstance(reply, Mapping):
            raise RedisError(f"INFO memory: unexpected reply {type(reply).__name__}")
        return parse_memory_info(reply)

    def doctor(self) -> str:
        reply = self._call("MEMORY DOCTOR", self._client.execute_command, "MEMORY", "DOCTOR")
        if isinstance(reply, bytes):
            return reply.decode("utf-8", errors="replace")
        if isinstance(reply, str):
            return reply
        raise RedisError(f"MEMORY DOCTOR: unexpected reply {type(reply).__name__}")

    def key_count(self) -> int:
        """DBSIZE: how many keys the sample is drawn from."""
        reply = self._call("DBSIZE", self._client.dbsize)
        if not isinstance(reply, int):
            raise RedisError(f"DBSIZE: unexpected reply {reply!r:.100}")
        return reply

    def sample_keys(self, limit: int) -> list[bytes]:
        """Up to `limit` keys from SCAN; the number of SCAN calls is bounded too.

        SCAN may return fewer keys than COUNT (even none) on a sparse keyspace, so
        the loop stops after a fixed number of calls as well as at cursor 0.
        """
        keys: list[bytes] = []
        cursor = 0
        calls = 0
        max_calls = 4 * (limit // SCAN_BATCH + 1)
        while len(keys) < limit and calls < max_calls:
            reply = self._call(
                "SCAN", self._client.scan, cursor, None, min(SCAN_BATCH, limit - len(keys))
            )
            calls += 1
            try:
                cursor, batch = int(reply[0]), list(reply[1])
            except (TypeError, ValueError, IndexError):
                raise RedisError(f"SCAN: unexpected reply {reply!r:.100}") from None
            keys.extend(batch[: limit - len(keys)])
            if cursor == 0:
                break
        return keys

    def key_sizes(self, keys: list[bytes]) -> list[KeySize]:
        """MEMORY USAGE of each key in one round trip; keys that expired meanwhile drop out."""
        if not keys:
            return []
        pipeline = self._client.pipeline(transaction=False)
        for key in keys:
            pipeline.execute_command("MEMORY USAGE", key)  # type: ignore[no-untyped-call]
        replies = self._call("MEMORY USAGE", pipeline.execute)
        sizes = []
        for key, reply in zip(keys, replies, strict=True):
            if reply is None:
                continue
            if not isinstance(reply, int):
                raise RedisError(f"MEMORY USAGE: unexpected reply {reply!r:.100}")
            sizes.append(KeySize(printable_key(key), reply))
        return sizes

    def purge(self) -> None:
        """MEMORY PURGE: ask jemalloc to return dirty pages to the system."""
        reply = self._call("MEMORY PURGE", self._client.execute_command, "MEMORY", "PURGE")
        if reply not in (True, b"OK", "OK"):
            raise RedisError(f"MEMORY PURGE: unexpected reply {reply!r:.100}")
