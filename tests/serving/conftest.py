"""Fixtures of the serving tests: run folders trained once on ml-latest-small, the app, and a live server."""

from __future__ import annotations

import os
import socket
import threading
import time
from pathlib import Path

import pytest

if os.environ.get("MOVIEREC_REQUIRE_BROWSER"):  # CI: the serve extra is installed, so a missing one is a failure
    import fastapi  # noqa: F401
else:
    pytest.importorskip("fastapi")


@pytest.fixture(scope="session")
def served_runs(mls, tmp_path_factory) -> dict[str, Path]:
    """Run folders (bundle + split) of ItemKNN and a short GMF on ml-latest-small's leave-one-out split."""
    from movierec.runs.folders import train_run

    root = tmp_path_factory.mktemp("served")
    runs = {"itemknn": root / "itemknn", "gmf": root / "gmf"}
    _, split = train_run("itemknn", mls, runs["itemknn"])
    train_run("gmf", mls, runs["gmf"], {"epochs": 3, "patience": 0}, split=split)
    return runs


@pytest.fixture(scope="session")
def service(served_runs):
    from movierec.serving import Service

    return Service.open([served_runs["itemknn"], served_runs["gmf"]])


@pytest.fixture(scope="session")
def client(service):
    from fastapi.testclient import TestClient

    from movierec.serving.api import create_app

    with TestClient(create_app(service=service)) as c:
        yield c


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def live_server(service):
    """The app on uvicorn in a background thread on 127.0.0.1: yields its base URL."""
    from movierec.serving.api import create_app

    yield from app_in_thread(create_app(service=service))


def app_in_thread(app):
    """Run ``app`` on uvicorn in a background thread on 127.0.0.1 (a free port): yields its base URL, then stops
    it (use with ``yield from`` in a fixture)."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                           access_log=False, lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the test server did not start")
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


def synthetic_run(root, model: str, users: int = 60, seed: int = 3):
    """A run folder of ``model`` trained on a small synthetic data set (300 movies) under ``root``."""
    from movierec.data import load_dataset
    from movierec.data.synthetic import write_synthetic
    from movierec.runs.folders import train_run

    data = write_synthetic(root / "syn", users, 300, 2000, seed=seed)
    train_run(model, load_dataset(data), root / "run")
    return root / "run"
