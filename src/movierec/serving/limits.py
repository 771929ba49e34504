"""What ``movierec serve`` allows one client, so that a server reachable from a network (``--host 0.0.0.0``)
stays up for everyone else: bounded bodies, connections, request times and request heads.

- :class:`BodyLimit` (ASGI middleware): a body over ``max_body`` bytes is answered 413 before anything parses
  it: at once from its Content-Length, or as soon as a chunked body passes the limit while it streams in (the
  connection is then closed). Bodies within the limit are read whole before the app sees them.
- :func:`guarded_http` (uvicorn's HTTP protocol, subclassed): each request must arrive whole (head and body)
  within ``request_timeout`` seconds of its first byte (of the connection, for the first request), or the
  connection is closed (408 when the head was not complete): half-open and slowloris clients are dropped instead
  of held. A request whose head is still incomplete after ``max_head`` bytes is answered 431 and closed (uvicorn's
  httptools parser has no such limit; h11's ``h11_max_incomplete_event_size`` is set to the same value): a head
  that never ends holds at most that plus one read. A connection beyond ``max_connections`` open ones is
  answered 503 and closed at once, before it holds a file descriptor for long.
- :func:`uvicorn_settings`: the keyword arguments of ``uvicorn.Config`` that go with them:
  ``limit_concurrency`` (503 for a request once that many connections or requests are open),
  ``timeout_keep_alive`` (idle keep-alive connections closed), ``timeout_graceful_shutdown`` (Ctrl-C does not
  wait for held connections), ``h11_max_incomplete_event_size``, and ``http`` (the guarded protocol).

uvicorn itself has no deadline for receiving a request: ``timeout_keep_alive`` only runs between requests and
restarts at every byte received, so a client that sends one byte every few seconds held a connection forever.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

MAX_BODY = 1 << 20  # bytes of a request body: 1,000 ratings fit unless their ids average ~1,000 characters
MAX_HEAD = 32 << 10  # bytes of a request line and headers
REQUEST_TIMEOUT = 10.0  # seconds for a whole request to arrive, from its first byte
KEEP_ALIVE = 5  # seconds an idle keep-alive connection stays open (uvicorn's default)
MAX_CONNECTIONS = 1000  # connections open at once (each holds a file descriptor); more are refused with 503
GRACEFUL_SHUTDOWN = 10  # seconds Ctrl-C waits for requests in flight


@dataclass(frozen=True)
class Limits:
    """The limits of one server (see the module docstring); bytes, seconds and counts."""

    max_body: int = MAX_BODY
    max_head: int = MAX_HEAD
    request_timeout: float = REQUEST_TIMEOUT
    keep_alive: int = KEEP_ALIVE
    max_connections: int = MAX_CONNECTIONS
    graceful_shutdown: int = GRACEFUL_SHUTDOWN


# ------------------------------------------------------------------------------------------------ bodies
class BodyLimit:
    """ASGI middleware: 413 for a body over ``max_body`` bytes, checked before the app parses anything."""

    def __init__(self, app: ASGIApp, max_body: int = MAX_BODY) -> None:
        self.app = app
        self.max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = _content_length(scope)
        if length is not None and length > self.max_body:
            await _too_large(send, self.max_body, length)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return  # the client left (or its request took too long): nobody to answer
            body = message.get("body", b"")
            size += len(body)
            if size > self.max_body:
                await _too_large(send, self.max_body, None)
                return
            chunks.append(body)
            if not message.get("more_body", False):
                break
        await self.app(scope, _replay(b"".join(chunks), receive), send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None  # the server's parser refuses such a request before it gets here
    return None


def _replay(body: bytes, receive: Receive) -> Receive:
    """A receive that gives the body read already, then waits on the real one (for a disconnect)."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


async def _too_large(send: Send, limit: int, length: int | None) -> None:
    got = f" (Content-Length {length:,})" if length is not None else ""
    detail = f"request body too large{got}: at most {limit:,} bytes"
    body = json.dumps({"detail": detail}).encode()
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})


# ------------------------------------------------------------------------------------------------ connections
def _raw_response(status: str, detail: str) -> bytes:
    body = json.dumps({"detail": detail}).encode()
    return (f"HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {len(body)}\r\n"
            "connection: close\r\n\r\n").encode() + body


class _Guarded:
    """Mixin over uvicorn's HTTP protocol (httptools or h11): a deadline per request, a cap on the request head,
    a cap on open connections. ``self.cycle`` is uvicorn's current request; a new one exists once a head is parsed."""

    limits: Limits = Limits()

    def connection_made(self, transport: asyncio.Transport) -> None:
        super().connection_made(transport)
        self._deadline: asyncio.TimerHandle | None = None
        self._waiting_for: object = None  # the request (cycle) that was current when the deadline was armed
        self._head_bytes = 0
        if len(self.connections) > self.limits.max_connections:
            self._refuse("503 Service Unavailable", "too many connections; try again in a moment")
            return
        self._arm()

    def data_received(self, data: bytes) -> None:
        cycle = self.cycle
        if self._deadline is None and (cycle is None or cycle.response_complete):
            self._arm()  # the first byte of the next request on a kept-alive connection
        waiting = self._deadline is not None and self.cycle is self._waiting_for
        if waiting:
            self._head_bytes += len(data)
        super().data_received(data)
        cycle = self.cycle
        if waiting and cycle is self._waiting_for and self._head_bytes > self.limits.max_head:
            self._refuse("431 Request Header Fields Too Large",
                         f"request line and headers over {self.limits.max_head:,} bytes")
            return  # (one read, at most 256 KiB, went to the parser: the head held is bounded by that)
        if self._deadline is not None and cycle is not self._waiting_for and cycle is not None \
                and not cycle.more_body:
            self._disarm()  # the request is here whole: the app's time is not limited here

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        self._disarm()
        self._waiting_for = self.cycle
        self._head_bytes = 0
        self._deadline = self.loop.call_later(self.limits.request_timeout, self._expired)

    def _disarm(self) -> None:
        deadline = getattr(self, "_deadline", None)
        if deadline is not None:
            deadline.cancel()
        self._deadline = None

    def _expired(self) -> None:
        self._deadline = None
        transport = self.transport
        if transport.is_closing():
            return
        if self.cycle is self._waiting_for:  # no complete head: nothing runs yet, so answer
            transport.write(_raw_response("408 Request Timeout", f"request not received within "
                                                                 f"{self.limits.request_timeout:g} s"))
        transport.close()

    def _refuse(self, status: str, detail: str) -> None:
        self._disarm()
        transport = self.transport
        if not transport.is_closing():
            transport.write(_raw_response(status, detail))
            transport.close()


def guarded_http(limits: Limits = Limits()) -> type:
    """uvicorn's HTTP protocol class (httptools where installed, else h11) with :class:`_Guarded` on top."""
    try:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol as base
    except ImportError:
        from uvicorn.protocols.http.h11_impl import H11Protocol as base
    return type(f"Guarded{base.__name__}", (_Guarded, base), {"limits": limits})


def uvicorn_settings(limits: Limits = Limits()) -> dict[str, Any]:
    """Keyword arguments of ``uvicorn.run`` / ``uvicorn.Config`` that enforce ``limits``."""
    return {"http": guarded_http(limits), "limit_concurrency": limits.max_connections,
            "timeout_keep_alive": limits.keep_alive, "timeout_graceful_shutdown": limits.graceful_shutdown,
            "h11_max_incomplete_event_size": limits.max_head}


# ------------------------------------------------------------------------------------------- per client
NEW_PEOPLE_PER_MINUTE = 20  # POST /v1/people from one client address
WRITES_PER_MINUTE = 600  # rating writes (PUT, DELETE) from one client address
_TRACKED_CLIENTS = 100_000  # addresses remembered at once; the least recently seen are forgotten first


class ClientRateLimit:
    """At most ``per_minute`` events per client address in any 60 s (a sliding window). :meth:`wait` says how
    many seconds a client must wait before its next event is allowed (0: allowed now, and counted)."""

    def __init__(self, per_minute: int, window: float = 60.0) -> None:
        self.per_minute, self.window = per_minute, window
        self._seen: OrderedDict[str, deque] = OrderedDict()
        self._lock = threading.Lock()

    def wait(self, client: str, now: float | None = None) -> float:
        now = time.monotonic() if now is None else now
        with self._lock:
            times = self._seen.pop(client, None)
            if times is None:
                times = deque()
            while times and times[0] <= now - self.window:
                times.popleft()
            self._seen[client] = times  # most recently seen last
            if len(self._seen) > _TRACKED_CLIENTS:
                self._seen.popitem(last=False)
            if len(times) >= self.per_minute:
                return max(times[0] + self.window - now, 0.001)
            times.append(now)
            return 0.0
