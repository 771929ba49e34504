"""The server under abuse (issue 22, class 8): no input reaches a 500, bodies and request heads are capped, half-open
and slowloris connections are dropped, connections are capped, and /docs and /redoc work offline."""

from __future__ import annotations

import json
import socket
import threading
import time
import tracemalloc
from urllib.parse import quote

import pytest

from movierec.serving.limits import MAX_BODY, Limits

from .conftest import free_port

# ------------------------------------------------------------------------------------------ every bad input
BAD_IDS = ["0", "-1", "1.5", "1e3", "NaN", "inf", str(10**30), str(2**63), str(-(2**63) - 1), "9" * 300, "x" * 300,
           " ", "%00", "\x00", "💥", "../../etc/passwd", "a/b", "[1]", "{}", "true", "null", "1;DROP TABLE"]
BAD_NUMBERS = ["0", "-1", "101", "1.5", "NaN", "1e309", str(10**30), "x", "", "[]", "9" * 5000]
BAD_TEXT = ["", " ", "x" * 300, "x" * 10_000, "%", "💥", "(", "\\", "\x00", "nope"]
BAD_VALUES: list[object] = [10**30, 2**63, -(2**63) - 1, -1, 0, 1.5, 1e308, -0.0, "NaN", "x", "", "x" * 300, None,
                            True, False, [], [[[1]]], {}, {"a": 1}, [1, 2]]
GOOD = {"ratings": [{"movie_id": 1, "rating": 5}], "k": 5}
RAW_BODIES = [b"", b"{", b"null", b"[]", b"\xff\xfe\x00", b'{"ratings": [{"movie_id": 1, "rating": NaN}]}',
              b'{"ratings": [{"movie_id": 1, "rating": Infinity}]}', b'{"ratings": [{"movie_id": 1e400, "rating": 4}]}',
              b'{"ratings": [{"movie_id": 1' + b"0" * 5000 + b', "rating": 4}]}', b"[" * 100_000 + b"]" * 100_000,
              b'{"ratings": ' + b"[" * 50_000 + b"]" * 50_000 + b"}", b"ratings=1&k=2",
              b'{"ratings": "' + b"x" * 500_000 + b'"}']
CONTENT_TYPES = ["application/json", "text/plain", "application/x-www-form-urlencoded",
                 "multipart/form-data; boundary=x", None]


def _bodies() -> list[object]:
    """Request bodies with one bad value in each field of a good one (and the field missing)."""
    out: list[object] = [*BAD_VALUES]
    for value in [*BAD_VALUES, "missing"]:
        for path in (("ratings",), ("ratings", 0, "movie_id"), ("ratings", 0, "rating"), ("k",), ("model",),
                     ("extra",), ("ratings", 0, "extra")):
            body = json.loads(json.dumps(GOOD))
            target = body
            for key in path[:-1]:
                target = target[key]
            if value == "missing":
                target.pop(path[-1], None)
            else:
                target[path[-1]] = value
            out.append(body)
    out.append({"ratings": [{"movie_id": 1, "rating": 4}] * 5000})
    out.append({"ratings": [{"movie_id": i, "rating": 4} for i in range(1000)]})  # many unknown ids: 404
    return out


def _requests() -> list[tuple[str, str, dict]]:
    """(method, url, httpx keyword arguments) of every bad request, against every endpoint."""
    out: list[tuple[str, str, dict]] = []
    for raw in BAD_IDS:
        i = quote(raw, safe="")
        out += [("GET", f"/v1/users/{i}/recommendations", {}), ("GET", f"/v1/users/{i}/segment", {}),
                ("GET", f"/v1/movies/{i}", {}), ("GET", f"/v1/movies/{i}/similar", {}),
                ("GET", f"/v1/movies/{i}/similar?by=model&model=gmf", {})]
    for n in BAD_NUMBERS:
        out += [("GET", "/v1/users/1/recommendations", {"params": {"k": n}}),
                ("GET", "/v1/movies", {"params": {"q": "toy", "limit": n}}),
                ("GET", "/v1/movies/1/similar", {"params": {"k": n}})]
    for t in BAD_TEXT:
        out += [("GET", "/v1/users/1/recommendations", {"params": {"model": t}}),
                ("GET", "/v1/users/1/segment", {"params": {"model": t}}),
                ("GET", "/v1/movies", {"params": {"q": t}}),
                ("GET", "/v1/movies/1/similar", {"params": {"by": t}}),
                ("GET", "/v1/movies/1/similar", {"params": {"by": "model", "model": t}}),
                ("GET", "/health", {"params": {"x": t}}), ("GET", "/v1/models", {"params": {"x": t}})]
    out += [("POST", "/v1/recommendations", {"json": b}) for b in _bodies()]
    for raw in RAW_BODIES:
        for ctype in CONTENT_TYPES:
            headers = {"content-type": ctype} if ctype else {}
            out.append(("POST", "/v1/recommendations", {"content": raw, "headers": headers}))
    for method in ("PUT", "DELETE", "PATCH"):
        out.append((method, "/v1/recommendations", {"json": GOOD}))
    out.append(("GET", "/v1/recommendations", {}))
    out.append(("POST", "/v1/movies", {"json": GOOD}))
    return out


def test_no_bad_input_reaches_a_500(client) -> None:
    requests = _requests()
    assert len(requests) > 400
    wrong = []
    for method, url, kwargs in requests:
        r = client.request(method, url, **kwargs)
        if r.status_code >= 500:
            wrong.append(f"{method} {url[:80]} {str(kwargs)[:120]} -> {r.status_code} {r.text[:200]}")
        elif r.status_code >= 400:
            detail = r.json().get("detail")
            if not (isinstance(detail, str) and "\n" not in detail and len(detail) < 500):
                wrong.append(f"{method} {url[:80]} {str(kwargs)[:120]}: detail {str(detail)[:200]}")
    assert not wrong, "\n".join(wrong[:20]) + f"\n({len(wrong)} in all)"


def test_huge_and_foreign_ids_are_404_or_422(client) -> None:
    for raw in (str(10**30), str(2**64), "-1", "1.5", "abc"):
        assert client.get(f"/v1/movies/{raw}").status_code == 404
        assert client.get(f"/v1/movies/{raw}/similar").status_code == 404
        assert client.get(f"/v1/users/{raw}/recommendations").status_code == 404
    r = client.post("/v1/recommendations", json={"ratings": [{"movie_id": 10**30, "rating": 4}]})
    assert r.status_code == 404 and r.json()["detail"] == f"unknown movie id {10**30}"
    r = client.post("/v1/recommendations", json={"ratings": [{"movie_id": 10**400, "rating": 4}]})
    assert r.status_code == 404 and "an integer of about 400 digits" in r.json()["detail"]
    r = client.post("/v1/recommendations", json={"ratings": [{"movie_id": 1, "rating": 4}] * 1001})
    assert r.status_code == 422 and r.json()["detail"] == "ratings: at most 1000 per request (got 1001)"


# ------------------------------------------------------------------------------------------ bodies
def test_a_body_over_the_limit_is_413_from_its_length(client) -> None:
    r = client.post("/v1/recommendations", content=b"x" * (MAX_BODY + 1), headers={"content-type": "application/json"})
    assert r.status_code == 413 and r.headers["connection"] == "close"
    assert r.json()["detail"] == f"request body too large (Content-Length {MAX_BODY + 1:,}): at most {MAX_BODY:,} bytes"
    body = {"ratings": [{"movie_id": 1, "rating": 5}] * 1000}  # the most ratings a request may have: far within
    assert len(json.dumps(body)) < MAX_BODY / 10 and client.post("/v1/recommendations", json=body).status_code == 200


def test_a_streamed_body_is_cut_at_the_limit_before_parsing() -> None:
    """A chunked 60 MB body: answered 413 once 1 MiB has arrived; the rest is never read, the app never runs, and
    nothing big is held."""
    import asyncio

    from movierec.serving.limits import BodyLimit

    chunk = b"[1," * 21_846  # 64 KiB
    pulled, sent = 0, []

    async def receive() -> dict:
        nonlocal pulled
        pulled += 1
        return {"type": "http.request", "body": chunk, "more_body": pulled < 60 * 16}

    async def send(message: dict) -> None:
        sent.append(message)

    async def app(scope, receive, send) -> None:
        raise AssertionError("the app saw a body over the limit")

    tracemalloc.start()
    try:
        asyncio.run(BodyLimit(app)({"type": "http", "headers": []}, receive, send))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert sent[0]["status"] == 413 and (b"connection", b"close") in sent[0]["headers"]
    assert json.loads(sent[1]["body"])["detail"] == f"request body too large: at most {MAX_BODY:,} bytes"
    assert pulled * len(chunk) <= MAX_BODY + len(chunk)  # 17 of 960 chunks read
    assert peak < 4 << 20, f"{peak / 2**20:.1f} MiB held for a refused body"


# ------------------------------------------------------------------------------------------ docs, offline
@pytest.mark.parametrize(("page", "assets"), [("/docs", ("swagger-ui-bundle.js", "swagger-ui.css")),
                                              ("/redoc", ("redoc.standalone.js",))])
def test_docs_pages_load_nothing_from_the_internet(client, page: str, assets: tuple[str, ...]) -> None:
    r = client.get(page)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert "http://" not in r.text and "https://" not in r.text and "cdn" not in r.text.lower()
    for name in assets:
        assert f"/static-docs/{name}" in r.text
        asset = client.get(f"/static-docs/{name}")
        assert asset.status_code == 200 and len(asset.content) > 100_000
    assert client.get("/openapi.json").status_code == 200


# ------------------------------------------------------------------------------------------ uvicorn's settings
def test_serve_runs_uvicorn_with_the_limits(monkeypatch) -> None:
    import uvicorn

    from movierec.serving import api
    from movierec.serving.limits import MAX_CONNECTIONS

    seen: dict = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: seen.update(kw))
    api.serve(["unused"], port=8123)
    assert seen["limit_concurrency"] == MAX_CONNECTIONS and seen["timeout_keep_alive"] == 5
    assert seen["timeout_graceful_shutdown"] == 10 and seen["h11_max_incomplete_event_size"] == 32 << 10
    assert seen["http"].__name__.startswith("Guarded") and seen["http"].limits == Limits()
    assert seen["host"] == "127.0.0.1"


# ------------------------------------------------------------------------------------------ a live guarded server
LIVE = Limits(request_timeout=1.0, max_head=8192, max_connections=16, keep_alive=2)


def _start(app, limits: Limits):
    import uvicorn

    from movierec.serving.limits import uvicorn_settings

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error", access_log=False,
                                           lifespan="on", **uvicorn_settings(limits)))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "the test server did not start"
        time.sleep(0.05)
    return port, server, thread


@pytest.fixture(scope="module")
def guarded(service):
    """The app on uvicorn with short limits (1 s to send a request, 16 connections): its port."""
    from movierec.serving.api import create_app

    port, server, thread = _start(create_app(service=service), LIVE)
    yield port
    server.should_exit = True
    thread.join(timeout=10)


def _connect(port: int) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def _read_until_closed(s: socket.socket, limit: float) -> tuple[bytes, float]:
    """Everything the server sends until it closes the connection (or ``limit`` seconds): (bytes, seconds)."""
    t0, data = time.monotonic(), b""
    s.settimeout(0.1)
    while time.monotonic() - t0 < limit:
        try:
            chunk = s.recv(65536)
        except TimeoutError:
            continue
        except ConnectionResetError:
            break
        if not chunk:
            break
        data += chunk
    return data, time.monotonic() - t0


def _get(port: int, path: str = "/health") -> tuple[int, bytes]:
    with _connect(port) as s:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        data, _ = _read_until_closed(s, 10)
    return int(data.split(b" ", 2)[1]), data


def test_a_half_open_connection_is_closed(guarded: int) -> None:
    with _connect(guarded) as s:
        data, seconds = _read_until_closed(s, 5)
    assert data.startswith(b"HTTP/1.1 408 ") and 0.8 < seconds < 3


def test_a_slowloris_client_is_closed(guarded: int) -> None:
    """A head that grows by one header every 0.2 s is cut at the deadline, however steadily it trickles."""
    with _connect(guarded) as s:
        s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")
        t0 = time.monotonic()
        closed = None
        for i in range(40):
            time.sleep(0.2)
            try:
                s.sendall(f"X-a{i}: b\r\n".encode())
            except OSError:
                closed = time.monotonic() - t0
                break
        data, _ = _read_until_closed(s, 3)
    assert b"408 Request Timeout" in data or closed is not None
    assert closed is None or closed < 3


def test_a_slow_but_timely_request_and_keep_alive_work(guarded: int) -> None:
    with _connect(guarded) as s:
        for _ in range(3):  # three requests on one connection, each sent in two parts 0.3 s apart
            s.sendall(b"GET /health HTTP/1.1\r\n")
            time.sleep(0.3)
            s.sendall(b"Host: x\r\n\r\n")
            s.settimeout(5)
            head = s.recv(65536)
            assert head.startswith(b"HTTP/1.1 200 "), head[:100]
            time.sleep(0.7)  # within keep-alive; past the request deadline counted from the previous request


def test_a_head_that_never_ends_is_431(guarded: int) -> None:
    """A header that keeps growing is refused once the head passes the limit, long before the deadline."""
    with _connect(guarded) as s:
        s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: ")
        try:
            for _ in range(64):
                s.sendall(b"a" * 1024)
                time.sleep(0.002)
        except OSError:
            pass  # closed by the server once it answered
        data, seconds = _read_until_closed(s, 5)
    assert data.startswith(b"HTTP/1.1 431 ") and seconds < 0.8


def test_a_declared_huge_body_is_refused_at_once(guarded: int) -> None:
    with _connect(guarded) as s:
        s.sendall(b"POST /v1/recommendations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Content-Length: 60000000\r\n\r\n")
        data, seconds = _read_until_closed(s, 5)
    assert data.startswith(b"HTTP/1.1 413 ") and seconds < 0.8  # before the request deadline


def test_a_chunked_body_over_the_limit_is_413(guarded: int) -> None:
    with _connect(guarded) as s:
        s.sendall(b"POST /v1/recommendations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Transfer-Encoding: chunked\r\n\r\n")
        chunk = b"%x\r\n%s\r\n" % (65536, b"1" * 65536)
        try:
            for _ in range(40):  # 2.5 MiB
                s.sendall(chunk)
        except OSError:
            pass  # closed by the server once it answered
        data, _ = _read_until_closed(s, 5)
    assert data.startswith(b"HTTP/1.1 413 ")


def test_connections_over_the_cap_are_refused_then_served_again(guarded: int) -> None:
    held = [_connect(guarded) for _ in range(LIVE.max_connections + 4)]
    try:
        time.sleep(0.2)
        refused = 0
        for s in held[LIVE.max_connections:]:
            data, _ = _read_until_closed(s, 2)
            refused += data.startswith(b"HTTP/1.1 503 ")
        assert refused == 4
    finally:
        for s in held:
            s.close()
    time.sleep(0.3)
    assert _get(guarded)[0] == 200


def test_the_deadline_does_not_cut_a_slow_answer() -> None:
    """The deadline is for receiving a request: a handler that takes longer than it still answers."""
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    async def slow(request):
        import asyncio

        await asyncio.sleep(1.5)
        return PlainTextResponse("done")

    port, server, thread = _start(Starlette(routes=[Route("/slow", slow)]), LIVE)
    try:
        status, data = _get(port, "/slow")
        assert status == 200 and data.endswith(b"done")
    finally:
        server.should_exit = True
        thread.join(timeout=10)
