"""Shared fixtures: the MovieLens copies in ../shared/data and a private cache for every test session; the tiers.

Tests come in three tiers (markers, set here so that no test can forget its own):

- the default tier: unit and contract tests on synthetic data, the CLI run in-process (``make check``);
- ``realdata``: every test that reads a MovieLens copy from ../shared/data (quality floors, the pinned quick
  study): any test using the ``shared_data_dir`` fixture, directly or through another fixture;
- ``e2e``: whole programs: subprocesses of the CLI (the bad-input walk, the README's commands, Ctrl-C,
  concurrent writers), torchrun, the browser, a server under load (:data:`E2E_MODULES` and the ``browser``
  fixture).

``make test`` (and CI) runs all three.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def shared_data_root() -> Path:
    env = os.environ.get("MOVIEREC_SHARED_DATA")
    return Path(env) if env else REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data_dir() -> Path:
    root = shared_data_root()
    if not (root / "ml-latest-small" / "ratings.csv").exists():
        pytest.skip(f"MovieLens copies not found in {root}")
    return root


@pytest.fixture(autouse=True, scope="session")
def _private_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Never touch the user's cache: every test session gets its own MOVIEREC_CACHE_DIR."""
    old = os.environ.get("MOVIEREC_CACHE_DIR")
    os.environ["MOVIEREC_CACHE_DIR"] = str(tmp_path_factory.mktemp("movierec-cache"))
    yield
    if old is None:
        os.environ.pop("MOVIEREC_CACHE_DIR", None)
    else:
        os.environ["MOVIEREC_CACHE_DIR"] = old


@pytest.fixture(autouse=True)
def _threads_kept() -> Iterator[None]:
    """Every test leaves torch's and the BLAS libraries' thread counts as it found them. A served app made in
    this process sets one thread of each for the whole process (right for a server, whose requests each take a
    thread); the tests after it would compute with other float sums than the pinned study's numbers were."""
    import torch
    from threadpoolctl import threadpool_info, threadpool_limits

    torch_threads = torch.get_num_threads()
    by_api: dict[str, int] = {}
    for lib in threadpool_info():
        by_api[lib["user_api"]] = max(by_api.get(lib["user_api"], 1), lib["num_threads"])
    yield
    if torch.get_num_threads() != torch_threads:
        torch.set_num_threads(torch_threads)
    for api, n in by_api.items():
        if any(lib["user_api"] == api and lib["num_threads"] != n for lib in threadpool_info()):
            threadpool_limits(limits=n, user_api=api)


@pytest.fixture(scope="session")
def mls(shared_data_dir: Path):
    """ml-latest-small, loaded once per session."""
    from movierec.data import load_dataset

    return load_dataset(str(shared_data_dir / "ml-latest-small"))


@pytest.fixture(scope="session")
def mls_split(mls):
    from movierec.data.splits import leave_one_out

    return leave_one_out(mls.interactions, seed=42)


# ------------------------------------------------------------------------------------------------ browser
BROWSER_FLAGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage"]


def chromium_path() -> str | None:
    import shutil

    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="session")
def browser():
    """Headless Chromium (Debian's package) driven by Playwright; in CI (MOVIEREC_REQUIRE_BROWSER) a missing
    Chromium fails rather than skips."""
    exe = chromium_path()
    if exe is None:
        if os.environ.get("MOVIEREC_REQUIRE_BROWSER"):
            pytest.fail("chromium is not installed (make test installs Debian's chromium package)")
        pytest.skip("chromium is not installed (make test installs Debian's chromium package)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=exe, args=BROWSER_FLAGS)
        yield b
        b.close()


# ------------------------------------------------------------------------------------------------ the CLI
def cli_ok(*args: str) -> str:
    """`movierec ARGS` in this process through typer's runner; its output (the command must succeed)."""
    from typer.testing import CliRunner

    from movierec.cli import app

    r = CliRunner().invoke(app, list(args))
    assert r.exit_code == 0, (r.output, r.exception)
    return r.output


def cli_fails(*args: str) -> str:
    """The user error `movierec ARGS` raises (the entry point prints it as one line, exit code 2)."""
    from typer.testing import CliRunner

    from movierec.cli import app
    from movierec.errors import MovieRecError

    r = CliRunner().invoke(app, list(args))
    assert isinstance(r.exception, MovieRecError), (r.exit_code, r.output, r.exception)
    assert "\n" not in str(r.exception)
    return str(r.exception)


def run_cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture, *args: str) -> tuple[int, str, str]:
    """Run `movierec ARGS` in this process (so monkeypatches apply); (exit code, stdout, stderr)."""
    import sys

    from movierec.cli import main
    from movierec.cli.common import console

    monkeypatch.setattr(sys, "argv", ["movierec", *args])
    monkeypatch.setattr(console, "width", 400)
    code = 0
    try:
        main()
    except SystemExit as e:
        code = int(e.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


#: modules whose tests drive whole programs (subprocesses, torchrun, servers): the e2e tier
E2E_MODULES = {"test_bad_inputs.py", "test_readme_examples.py", "test_distributed.py", "test_gpu_script.py",
               "test_progress_lines.py", "test_output_claims.py", "test_abuse.py", "test_cli.py",
               "test_people_durable.py"}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Put each test in its tier (module docstring): ``realdata`` by the fixtures it uses, ``e2e`` by module,
    by the browser fixture, or by an explicit ``e2e`` mark."""
    for item in items:
        names = set(getattr(item, "fixturenames", ()))
        if "shared_data_dir" in names:
            item.add_marker(pytest.mark.realdata)
        if item.path.name in E2E_MODULES or "browser" in names:
            item.add_marker(pytest.mark.e2e)


def _postgres_bin() -> Path | None:
    """The folder of initdb and pg_ctl: on PATH, else the newest of Debian's /usr/lib/postgresql/*/bin."""
    import shutil

    found = shutil.which("initdb")
    if found and shutil.which("pg_ctl"):
        return Path(found).parent
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parts[-3]))
    return candidates[-1].parent if candidates else None


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """A throwaway PostgreSQL cluster (initdb + pg_ctl, trust auth, 127.0.0.1 on a free port) for the session:
    yields its server URL without a database. Skipped where PostgreSQL is not installed, but failed when
    ``MOVIEREC_REQUIRE_POSTGRES`` is set (CI installs it: .ci/run)."""
    import getpass
    import socket
    import subprocess
    import tempfile

    bin_dir = _postgres_bin()
    if bin_dir is None:
        if os.environ.get("MOVIEREC_REQUIRE_POSTGRES"):
            pytest.fail("PostgreSQL (initdb, pg_ctl) is not installed; .ci/run installs Debian's postgresql")
        pytest.skip("PostgreSQL (initdb, pg_ctl) is not installed")
    root = Path(tempfile.mkdtemp(prefix="movierec-pg-"))
    as_user: list[str] = []
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root: its own system user runs it
        user = "postgres"
        os.chmod(root, 0o755)
        shutil_chown = __import__("shutil").chown
        shutil_chown(root, user, None)
        as_user = ["runuser", "-u", user, "--"]
    else:
        user = getpass.getuser()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    data = root / "data"
    subprocess.run([*as_user, str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust",
                    "-E", "UTF8", "--no-sync"], check=True, capture_output=True)
    options = f"-h 127.0.0.1 -p {port} -k {root} -c fsync=on"
    subprocess.run([*as_user, str(bin_dir / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(root / "log"),
                    "-w", "start"], check=True, capture_output=True)
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}"
    finally:
        subprocess.run([*as_user, str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
                       capture_output=True)
        __import__("shutil").rmtree(root, ignore_errors=True)


@pytest.fixture
def postgres_url(postgres_server: str) -> str:
    """A fresh, empty database on the session's PostgreSQL server."""
    import uuid

    import psycopg

    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_server.replace("postgresql+psycopg", "postgresql") + "/postgres",
                         autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return f"{postgres_server}/{name}"
