"""Every user-caused error: one line on stderr, exit code 2, nothing changed on disk (issue 10).

Each case prepares files in its own ``tmp_path`` (a copy of one small trained run and a small synthetic
data set, built once per module), runs ``python -m movierec ...`` there in a subprocess and checks the exit
code, the single stderr line against a pattern, and that no file or folder under ``tmp_path`` changed.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from movierec.cli import INTERRUPTED


@dataclass(frozen=True)
class Base:
    data: Path  # ratings.csv, movies.csv, tags.csv of a synthetic data set
    run: Path  # a trained popularity run folder


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Base:
    from movierec.data import load_dataset
    from movierec.data.synthetic import write_synthetic
    from movierec.runs.folders import train_run

    root = tmp_path_factory.mktemp("bad-inputs")
    data = write_synthetic(root / "syn", 80, 300, 3000, seed=1)
    train_run("popularity", load_dataset(data), root / "run")
    return Base(data, root / "run")


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "MOVIEREC_DEBUG"}
    env["MOVIEREC_DATA_DIR"] = ""  # no release is found (or fetched) by accident
    env.update(extra)
    return env


def _movierec(args: list[str], cwd: Path, timeout: float = 120, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "movierec", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env=_env(**env))


def _snapshot(root: Path) -> dict[str, str]:
    """Every file (its hash) and folder ("dir") under root, by relative path."""
    out = {}
    for p in sorted(root.rglob("*")):
        rel = str(p.relative_to(root))
        out[rel] = "dir" if p.is_dir() and not p.is_symlink() else hashlib.sha256(p.read_bytes()).hexdigest()
    return out


# --------------------------------------------------------------------------------------------- setups

def _run(tmp: Path, b: Base) -> Path:
    return Path(shutil.copytree(b.run, tmp / "run"))


def _data(tmp: Path, b: Base) -> Path:
    return Path(shutil.copytree(b.data, tmp / "data"))


def _write(name: str, content: bytes | Callable[[bytes], bytes]) -> Callable[[Path, Base], None]:
    """A run copy whose file ``name`` is replaced by ``content`` (or ``content(original)``)."""

    def setup(tmp: Path, b: Base) -> None:
        f = _run(tmp, b) / name
        f.write_bytes(content(f.read_bytes()) if callable(content) else content)

    return setup


def _folder_instead(name: str) -> Callable[[Path, Base], None]:
    """A run copy with a folder where file ``name`` should be (chmod 000 does not stop root)."""

    def setup(tmp: Path, b: Base) -> None:
        f = _run(tmp, b) / name
        f.unlink()
        f.mkdir()
        (f / "x").write_text("x")

    return setup


def _config(**changes: object) -> Callable[[Path, Base], None]:
    def setup(tmp: Path, b: Base) -> None:
        f = _run(tmp, b) / "config.json"
        cfg = json.loads(f.read_text())
        cfg.update(changes)
        f.write_text(json.dumps(cfg))

    return setup


def _no_split(tmp: Path, b: Base) -> None:
    shutil.rmtree(_run(tmp, b) / "split")


def _ratings(content: bytes | Callable[[bytes], bytes]) -> Callable[[Path, Base], None]:
    """A data copy whose ratings.csv is replaced by ``content`` (or ``content(original)``)."""

    def setup(tmp: Path, b: Base) -> None:
        f = _data(tmp, b) / "ratings.csv"
        f.write_bytes(content(f.read_bytes()) if callable(content) else content)

    return setup


def _header_only(raw: bytes) -> bytes:
    return raw.splitlines(keepends=True)[0]


def _drop_timestamp(raw: bytes) -> bytes:
    return b"\n".join(b",".join(line.split(b",")[:3]) for line in raw.splitlines()) + b"\n"


def _first_rows(n: int) -> Callable[[bytes], bytes]:
    return lambda raw: b"".join(raw.splitlines(keepends=True)[: n + 1])


def _ratings_folder(tmp: Path, b: Base) -> None:
    f = _data(tmp, b) / "ratings.csv"
    f.unlink()
    f.mkdir()


def _toml(text: str | None) -> Callable[[Path, Base], None]:
    """A data copy and ``cfg.toml`` holding ``text`` (None: a folder named cfg.toml)."""

    def setup(tmp: Path, b: Base) -> None:
        _data(tmp, b)
        if text is None:
            (tmp / "cfg.toml").mkdir()
            (tmp / "cfg.toml" / "x").write_text("x")
        else:
            (tmp / "cfg.toml").write_text(text)

    return setup


def _garbage(n: int) -> bytes:
    return bytes((i * 97 + 13) % 256 for i in range(n))


def _both(tmp: Path, b: Base) -> None:
    _run(tmp, b)
    _data(tmp, b)


def _user_folder_at(name: str) -> Callable[[Path, Base], None]:
    """A data copy and a folder of the user's, ``name``, with a file in it (where a run keeps its checkpoint)."""

    def setup(tmp: Path, b: Base) -> None:
        _data(tmp, b)
        (tmp / name).mkdir()
        (tmp / name / "notes.txt").write_text("mine")

    return setup


def _parquet(name: str, u: list) -> Callable[[Path, Base], None]:
    """A Parquet file ``name`` of interactions whose user column ``u`` holds ``u`` (item column ``i``)."""

    def setup(tmp: Path, b: Base) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.table({"u": u, "i": [f"SKU-{n}" for n in range(len(u))]}), tmp / name)

    return setup


def _file(name: str, content: bytes) -> Callable[[Path, Base], None]:
    def setup(tmp: Path, b: Base) -> None:
        (tmp / name).write_bytes(content)

    return setup


@dataclass(frozen=True)
class Case:
    id: str
    setup: Callable[[Path, Base], None]
    args: list[str]
    pattern: str


RECOMMEND = ["recommend", "run", "--user", "1"]
TRAIN_CONFIG = ["train", "popularity", "--data", "data", "--out", "out", "--config", "cfg.toml"]
EXPERIMENT = ["experiment", "cfg.toml", "--data", "data", "--out", "out"]
CASES = [
    # bundles
    Case("weights-truncated", _write("weights.safetensors", lambda raw: raw[:100]), RECOMMEND,
         r"run/weights\.safetensors: not a readable safetensors file"),
    Case("weights-garbage", _write("weights.safetensors", _garbage(5000)), ["evaluate", "run"],
         r"run/weights\.safetensors: not a readable safetensors file"),
    Case("weights-folder", _folder_instead("weights.safetensors"), RECOMMEND, r"run/weights\.safetensors: not a file"),
    Case("ids-truncated", _write("ids.parquet", lambda raw: raw[: len(raw) // 2]), RECOMMEND,
         r"run/ids\.parquet: not a readable Parquet file"),
    Case("ids-garbage", _write("ids.parquet", _garbage(3000)), ["evaluate", "run"],
         r"run/ids\.parquet: not a readable Parquet file"),
    Case("ids-folder", _folder_instead("ids.parquet"), RECOMMEND, r"run/ids\.parquet: not a file"),
    Case("config-other-model-fast", _config(model="gmf"), RECOMMEND,
         r"run/weights\.safetensors: does not hold the weights of a gmf model, as config\.json says"),
    Case("config-other-model-exact", _config(model="itemknn"), ["evaluate", "run"],
         r"run/weights\.safetensors: does not hold the weights of a itemknn model"),
    Case("config-unknown-model", _config(model="nosuch"), RECOMMEND, r"run/config\.json: unknown model 'nosuch'"),
    Case("config-sizes", _config(n_users=5), RECOMMEND, r"run/ids\.parquet: 80 users .* config\.json says 5"),
    Case("config-invalid-json", _write("config.json", b'{"format": '), RECOMMEND,
         r"run/config\.json, line 1: invalid JSON"),
    Case("config-folder", _folder_instead("config.json"), RECOMMEND, r"run/config\.json: cannot read"),
    Case("config-not-a-bundle", _write("config.json", b"[1, 2]"), RECOMMEND,
         r"run/config\.json: not a movierec bundle"),
    Case("no-split", _no_split, ["evaluate", "run"], r"run: no split/ folder"),
    Case("split-garbage", _write("split/split.safetensors", _garbage(2000)), ["evaluate", "run"],
         r"run/split/split\.safetensors: not a readable safetensors file"),
    Case("split-json-wrong", _write("split/split.json", b'{"a": 1}'), ["evaluate", "run"],
         r"run/split: not a movierec split"),
    Case("metrics-garbage", _write("metrics.json", b"{not json"), ["evaluate", "run"],
         r"run/metrics\.json, line 1: invalid JSON"),
    Case("run-missing", lambda tmp, b: None, RECOMMEND, r"^error: run: not found$"),
    Case("run-is-a-file", lambda tmp, b: (tmp / "run").write_text("x"), ["evaluate", "run"],
         r"run: not a model bundle \(a file, not a folder\)"),
    # ids and cutoffs
    Case("user-too-large", _run, ["recommend", "run", "--user", "99999999999999999999"],
         r"^error: unknown user id: 99999999999999999999$"),
    Case("user-negative", _run, ["recommend", "run", "--user", "-1"], r"^error: unknown user id: -1$"),
    Case("user-unknown", _run, ["recommend", "run", "--user", "5000"], r"^error: unknown user id: 5000$"),
    Case("recommend-k-0", _run, [*RECOMMEND, "-k", "0"], r"-k .*at least 1"),
    Case("evaluate-k-0", _run, ["evaluate", "run", "-k", "0"], r"-k .*at least 1"),
    Case("evaluate-k-too-large", _run, ["evaluate", "run", "-k", "100000"],
         r"-k 100000: larger than the 300 movies"),
    Case("evaluate-k-sampled", _run, ["evaluate", "run", "--protocol", "sampled-100", "-k", "101"],
         r"-k 101: larger than the 100 candidates"),
    Case("evaluate-protocol", _run, ["evaluate", "run", "--protocol", "nope"], r"unknown protocol 'nope'"),
    # ratings files
    Case("header-only", _ratings(_header_only), ["data", "info", "--data", "data"],
         r"data/ratings\.csv: no ratings \(the file holds only its header\)"),
    Case("header-only-train", _ratings(_header_only), ["train", "popularity", "--data", "data", "--out", "out"],
         r"data/ratings\.csv: no ratings"),
    Case("missing-column", _ratings(_drop_timestamp), ["data", "info", "--data", "data"],
         r"data/ratings\.csv, line 1: wrong columns: expected userId,movieId,rating,timestamp, "
         r"found userId,movieId,rating$"),
    Case("empty-file", _ratings(b""), ["train", "popularity", "--data", "data", "--out", "out"],
         r"data/ratings\.csv: empty file"),
    Case("binary-file", _ratings(_garbage(3000)), ["data", "info", "--data", "data"],
         r"data/ratings\.csv, line 1: wrong columns: .*found binary data"),
    Case("ratings-folder", _ratings_folder, ["data", "info", "--data", "data"], r"data/ratings\.csv: not a file"),
    Case("bad-rating", _ratings(lambda raw: raw + b"1,1,7.5,1000000000\n"), ["data", "info", "--data", "data"],
         r"data/ratings\.csv, line \d+: rating 7\.5 is outside"),
    Case("too-small-for-negatives", _ratings(_first_rows(200)),
         ["train", "popularity", "--data", "data", "--out", "out"],
         r"data: user \d+ has only \d+ unrated movies of \d+, too few for the 99 sampled negatives"),
    # training options
    Case("unknown-dataset", lambda tmp, b: None, ["train", "popularity", "--data", "nowhere", "--out", "out"],
         r"unknown dataset 'nowhere'"),
    Case("unknown-model", _data, ["train", "nosuch", "--data", "data", "--out", "out"], r"unknown model 'nosuch'"),
    Case("unknown-setting", _data, ["train", "popularity", "--data", "data", "--out", "out", "--set", "foo=1"],
         r"unknown setting 'foo'"),
    Case("bad-device", _data, ["train", "gmf", "--data", "data", "--out", "out", "--device", "nonsense"],
         r"--device 'nonsense'"),
    Case("negative-seed", _data, ["train", "popularity", "--data", "data", "--out", "out", "--seed", "-1"],
         r"seed -1: must be an integer of 0 or more"),
    Case("run-exists", _both, ["train", "popularity", "--data", "data", "--out", "run"],
         r"--out run: a run folder is already there"),
    # checkpoints are outputs (issue 22, class 1)
    Case("resume-finished-run", _both, ["train", "popularity", "--data", "data", "--out", "run", "--resume"],
         r"--out run: a finished run is there; --resume continues an interrupted run"),
    Case("checkpoint-users-folder", _user_folder_at("out.ckpt"),
         ["train", "popularity", "--data", "data", "--out", "out", "--force"],
         r"--out out: out\.ckpt is where this run keeps its checkpoints, and it holds something movierec did not"),
    # imports check shapes and names (issue 22, class 5)
    Case("import-list-ids", _parquet("lists.parquet", [[1, 2], [3], [4, 5]]),
         ["data", "import", "lists.parquet", "--user", "u", "--item", "i", "--name", "shop"],
         r"lists\.parquet: column 'u' \(--user\) holds lists .*; ids must be strings or integers$"),
    Case("import-bytes-ids", _parquet("bytes.parquet", [b"C-1", b"C-2", b"C-3"]),
         ["data", "import", "bytes.parquet", "--user", "u", "--item", "i", "--name", "shop"],
         r"bytes\.parquet: column 'u' \(--user\) holds bytes .*; ids must be strings or integers$"),
    Case("import-fractional-ids", _parquet("floats.parquet", [1.0, 2.5, 3.0]),
         ["data", "import", "floats.parquet", "--user", "u", "--item", "i", "--name", "shop"],
         r"floats\.parquet: user id 2\.5 in column 'u' \(--user\) is not a whole number \(row 2\)$"),
    Case("import-name-too-long", _file("events.csv", b"u,i\nu1,a\n"),
         ["data", "import", "events.csv", "--user", "u", "--item", "i", "--name", "x" * 300],
         r"--name: invalid dataset name 'x{40}\.\.\.' \(300 characters; at most 64\)$"),
    Case("import-name-dotdot", _file("events.csv", b"u,i\nu1,a\n"),
         ["data", "import", "events.csv", "--user", "u", "--item", "i", "--name", ".."],
         r"invalid dataset name '\.\.'"),
    Case("import-binary-junk", _file("garbage.csv", _garbage(5000)),
         ["data", "import", "garbage.csv", "--user", "u", "--item", "i", "--name", "shop"],
         r"garbage\.csv, line \d+: holds NUL bytes"),
    # config files say what they ignore (issue 22, class 6)
    Case("train-config-unknown-section", _toml("[popularity]\nepochs = 3\n"), [*TRAIN_CONFIG],
         r"cfg\.toml: \[popularity\] is not read by train --config"),
    Case("train-config-run-not-tables", _toml("run = 5\n"), [*TRAIN_CONFIG],
         r"cfg\.toml: run must be written as \[\[run\]\] tables .*not run = 5$"),
    Case("train-config-folder", _toml(None), [*TRAIN_CONFIG], r"cfg\.toml: a folder, not a config file$"),
    Case("train-config-model-not-a-name", _toml('[[run]]\nmodel = "popularity"\n[[run]]\nmodel = 5\n'),
         [*TRAIN_CONFIG], r"cfg\.toml: \[\[run\]\] number 2: model = 5 is not a model name"),
    Case("train-config-unread-key", _toml('seed = 3\n[[run]]\nmodel = "popularity"\n'), [*TRAIN_CONFIG],
         r"cfg\.toml: seed is not read by train --config"),
    Case("experiment-runs-not-tables", _toml("run = [1, 2]\n"), [*EXPERIMENT],
         r"cfg\.toml: run must be written as \[\[run\]\] tables .*not run = \[1, 2\]$"),
    Case("experiment-defaults-not-a-table", _toml('defaults = 5\n[[run]]\nmodel = "popularity"\n'),
         [*EXPERIMENT], r"cfg\.toml: \[defaults\] must be a table of settings, not 5$"),
    Case("experiment-config-folder", _toml(None), [*EXPERIMENT], r"cfg\.toml: a folder, not a config file$"),
]


@dataclass(frozen=True)
class Outcome:
    returncode: int
    stderr: str
    before: dict[str, str]
    after: dict[str, str]


@pytest.fixture(scope="module")
def outcomes(base: Base, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Outcome]:
    """Every case run once, the subprocesses side by side (each takes about a second of start-up alone)."""
    from concurrent.futures import ThreadPoolExecutor

    def one(case: Case) -> Outcome:
        tmp = tmp_path_factory.mktemp(case.id)
        case.setup(tmp, base)
        before = _snapshot(tmp)
        r = _movierec(case.args, tmp)
        return Outcome(r.returncode, r.stderr, before, _snapshot(tmp))

    with ThreadPoolExecutor(max_workers=max(2, min(8, os.cpu_count() or 2))) as pool:
        return dict(zip([c.id for c in CASES], pool.map(one, CASES), strict=True))


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_user_error_is_one_line(case: Case, outcomes: dict[str, Outcome]) -> None:
    out = outcomes[case.id]
    lines = out.stderr.splitlines()
    assert "Traceback" not in out.stderr, out.stderr
    assert out.returncode == 2, (out.returncode, out.stderr)
    assert len(lines) == 1, out.stderr
    assert lines[0].startswith("error: "), lines[0]
    assert re.search(case.pattern, lines[0]), lines[0]
    assert out.after == out.before  # nothing written, changed or removed


def test_debug_option_shows_the_traceback(base: Base, tmp_path: Path) -> None:
    _run(tmp_path, base)
    r = _movierec(["--debug", "recommend", "run", "--user", "99999999999999999999"], tmp_path)
    assert r.returncode == 1
    assert "Traceback" in r.stderr and "UnknownIdError: unknown user id: 99999999999999999999" in r.stderr


def test_debug_environment_variable_shows_the_traceback(base: Base, tmp_path: Path) -> None:
    _write("weights.safetensors", b"garbage")(tmp_path, base)
    r = _movierec(["recommend", "run", "--user", "1"], tmp_path, MOVIEREC_DEBUG="1")
    assert r.returncode == 1
    assert "Traceback" in r.stderr and "DataError" in r.stderr and "SafetensorError" in r.stderr


def _ctrl_c_as_in_a_terminal() -> None:
    """A child's SIGINT as a terminal gives it: a test run started in the background (CI) has SIGINT ignored,
    which its children inherit, and Python then never raises KeyboardInterrupt (the run would go on)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT")
def test_ctrl_c_prints_what_was_kept(base: Base, tmp_path: Path) -> None:
    pytest.importorskip("torch")
    _data(tmp_path, base)
    proc = subprocess.Popen(
        [sys.executable, "-m", "movierec", "train", "gmf", "--data", "data", "--out", "out", "--device", "cpu",
         "--set", "epochs=100000", "--set", "patience=100000"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(PYTHONFAULTHANDLER="1"),
        preexec_fn=_ctrl_c_as_in_a_terminal)
    try:
        deadline = time.monotonic() + 90
        ckpt = tmp_path / "out.ckpt"
        while not (ckpt.is_dir() and any(ckpt.iterdir())) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        if proc.poll() is not None or time.monotonic() >= deadline:
            pytest.fail(f"training did not reach its first checkpoint in 90 s (rc {proc.returncode})")
        time.sleep(0.3)
        proc.send_signal(signal.SIGINT)
        try:
            _, err = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGABRT)  # PYTHONFAULTHANDLER prints where the child was stuck
            _, err = proc.communicate(timeout=60)
            pytest.fail("the interrupted run did not exit within 60 s of Ctrl-C; where it was:\n" + err)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, err
    lines = err.splitlines()  # progress lines (stderr is not a terminal) come first, then the message alone
    assert lines[-1] == INTERRUPTED and all(re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d train gmf: ", x)
                                            for x in lines[:-1]), err
    assert ckpt.is_dir() and any(ckpt.iterdir())  # per-epoch checkpoints are kept
    assert not (tmp_path / "out").exists()
