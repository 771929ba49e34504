"""The server as a process: no acknowledged rating is lost (a server killed with SIGKILL right after its writes
has, after a restart, every rating it answered 2xx for: SQLite in WAL mode with synchronous commits,
PostgreSQL's own durability), and SIGHUP reloads the served runs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("sqlalchemy")
httpx = pytest.importorskip("httpx")

from tests.serving.conftest import free_port, synthetic_run  # noqa: E402


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return synthetic_run(tmp_path_factory.mktemp("durable"), "popularity")


def _start(run: Path, db: str, port: int) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-m", "movierec", "serve", str(run), "--db", db, "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"the server ended (rc {proc.returncode}): {proc.stdout.read()}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    proc.kill()
    pytest.fail("the server did not get ready in 60 s")


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_every_acknowledged_rating_survives_sigkill(backend: str, run_folder: Path, tmp_path: Path,
                                                    request: pytest.FixtureRequest) -> None:
    db = str(tmp_path / "people.sqlite") if backend == "sqlite" else request.getfixturevalue("postgres_url")
    port = free_port()
    proc = _start(run_folder, db, port)
    base = f"http://127.0.0.1:{port}"
    acked: dict[int, float] = {}
    try:
        with httpx.Client(base_url=base, timeout=10) as c:
            person = c.post("/v1/people").json()
            auth = {"Authorization": f"Bearer {person['token']}"}
            movies = [m["movie_id"] for m in c.get("/v1/movies", params={"q": "Synthetic", "limit": 100}).json()]
            for i, movie in enumerate(movies[:60]):
                rating = 0.5 + (i % 10) * 0.5
                if c.put(f"/v1/people/{person['person_id']}/ratings/{movie}", json={"rating": rating},
                         headers=auth).status_code == 200:
                    acked[movie] = rating
    finally:
        os.kill(proc.pid, signal.SIGKILL)  # right after the last acknowledged write: no shutdown, no flush
        proc.communicate()
    assert len(acked) == 60
    again = _start(run_folder, db, port)
    try:
        stored = httpx.get(f"{base}/v1/people/{person['person_id']}/ratings", headers=auth).json()["ratings"]
    finally:
        again.kill()
        again.communicate()
    assert {r["movie_id"]: r["rating"] for r in stored} == acked
    assert [r["movie_id"] for r in stored] == list(acked)  # in the order they were given


@pytest.mark.skipif(not hasattr(signal, "SIGHUP"), reason="SIGHUP")
def test_sighup_reloads_the_served_runs(run_folder: Path) -> None:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "movierec", "serve", str(run_folder), "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        first = httpx.get(f"{base}/v1/models").json()[0]["loaded_at"]
        time.sleep(1.1)  # loaded_at counts seconds
        proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 60
        again = first
        while again == first and time.monotonic() < deadline:
            time.sleep(0.1)
            again = httpx.get(f"{base}/v1/models").json()[0]["loaded_at"]
        assert again > first and proc.poll() is None  # reloaded, still serving
    finally:
        proc.kill()
        proc.communicate()
