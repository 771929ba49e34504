"""Data-parallel training with torchrun on CPU processes (gloo): `movierec train --nproc 2` reaches the quality
of one process, a run stopped under 2 processes resumes in 1 and one stopped in 1 resumes under 2, and every
trainer-shell model trains data-parallel. The data is synthetic (written here), not a MovieLens copy."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from movierec.data.synthetic import write_synthetic
from movierec.training.distributed import without_nproc
from movierec.training.sharding import shard

SCRIPT = Path(__file__).with_name("ddp_script.py")
SETTINGS = {"epochs": 4, "factors": 8, "layers": 2}
SET = [a for k, v in SETTINGS.items() for a in ("--set", f"{k}={v}")]


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> str:
    return str(write_synthetic(tmp_path_factory.mktemp("synth"), 1200, 600, 40_000, seed=5))


@pytest.fixture(scope="module")
def env(tmp_path_factory) -> dict[str, str]:
    return {**os.environ, "MOVIEREC_CACHE_DIR": str(tmp_path_factory.mktemp("cache")), "OMP_NUM_THREADS": "1"}


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "movierec", *args], capture_output=True, text=True, env=env,
                          timeout=600)


def torchrun(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                           str(SCRIPT), *args], capture_output=True, text=True, env=env, timeout=600)


def valid_ndcg(r: subprocess.CompletedProcess) -> float:
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(r.stdout)["valid"]["metrics"]["NDCG@10"]


def test_every_rank_gets_as_many_samples_and_none_twice() -> None:
    order = torch.randperm(11)
    parts = [shard(order, r, 3) for r in range(3)]
    assert [len(p) for p in parts] == [3, 3, 3]
    assert len(set(torch.cat(parts).tolist())) == 9 and shard(order, 0, 1) is order


def test_the_launcher_passes_every_argument_but_nproc() -> None:
    assert without_nproc(["train", "gmf", "--nproc", "2", "--set", "a=1", "--nproc=3"]) == ["train", "gmf", "--set",
                                                                                            "a=1"]


@pytest.mark.e2e
def test_two_processes_reach_the_quality_of_one_and_resume_with_any_count(data, env, tmp_path) -> None:
    one = valid_ndcg(cli(env, "train", "neumf", "--data", data, "--out", str(tmp_path / "one"), "--device", "cpu",
                         *SET, "--json"))
    r = cli(env, "train", "neumf", "--data", data, "--out", str(tmp_path / "two"), "--device", "cpu", "--nproc", "2",
            *SET, "--json")
    two = valid_ndcg(r)
    assert json.loads(r.stdout)["processes"] == 2
    # 1,200 validation users: the standard error of a mean NDCG@10 is about 0.01
    assert abs(one - two) < 0.03, (one, two)
    assert one > 0.1 and two > 0.1  # well above chance (10 of 100 candidates: about 0.045)

    # stopped after epoch 2 under 2 processes; resumed by one
    stopped = tmp_path / "stopped"
    r = torchrun(env, "stop", data, str(stopped), json.dumps(SETTINGS), "2")
    assert r.returncode == 0, r.stderr[-3000:]
    assert Path(f"{stopped}.ckpt").is_dir() and not stopped.exists()
    resumed = cli(env, "train", "neumf", "--data", data, "--out", str(stopped), "--device", "cpu", *SET, "--resume",
                  "--json")
    assert abs(valid_ndcg(resumed) - one) < 0.03
    log = [json.loads(line) for line in (stopped / "train_log.jsonl").read_text().splitlines()]
    assert [rec["epoch"] for rec in log] == [1, 2, 3, 4]
    assert not Path(f"{stopped}.ckpt").exists()


@pytest.mark.e2e
def test_a_run_of_one_process_resumes_under_two(data, env, tmp_path) -> None:
    from movierec.data import load_dataset
    from movierec.data.splits import make_split
    from movierec.fitting import fit_model
    from movierec.models.base import RunContext

    out = tmp_path / "run"
    ds = load_dataset(data)
    ctx = RunContext(device="cpu", checkpoint_dir=Path(f"{out}.ckpt"), on_epoch_end=lambda r: r["epoch"] < 2)
    _, report = fit_model("neumf", SETTINGS, make_split(ds, "loo", 42), ds.catalog, ctx)
    assert len(report.train_log) == 2
    r = cli(env, "train", "neumf", "--data", data, "--out", str(out), "--device", "cpu", "--nproc", "2", *SET,
            "--resume", "--json")
    assert valid_ndcg(r) > 0.1
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert [rec["epoch"] for rec in log] == [1, 2, 3, 4]


@pytest.mark.e2e
def test_every_trainer_shell_model_trains_data_parallel(data, env) -> None:
    r = torchrun(env, "models", data)
    assert r.returncode == 0, r.stderr[-3000:]
    found = json.loads(r.stdout.strip().splitlines()[-1])
    assert len(found) == 8
    assert all(v is not None and v > 0 for v in found.values()), found  # each one validated on rank 0
    assert min(v for k, v in found.items() if k.split()[0] in ("gmf", "neumf", "sasrec", "gru4rec")) > 0.1, found


def test_bad_process_counts_are_one_line_errors(data, env, tmp_path) -> None:
    from movierec.training.distributed import cpu_cores

    too_many = str(cpu_cores() + 1)
    for args, words in [(["--nproc", "0"], "at least 1"), (["--nproc", "2", "--device", "cuda"], "CUDA"),
                        (["--nproc", "2", "--device", "mps"], "mps"),
                        (["--nproc", too_many, "--device", "cpu"], f"--nproc {too_many}: this process may use")]:
        r = cli(env, "train", "gmf", "--data", data, "--out", str(tmp_path / "x"), *args)
        assert r.returncode == 2 and r.stderr.startswith("error:") and words in r.stderr, r.stderr
        assert len(r.stderr.strip().splitlines()) == 1


def _workers_of(launcher: int) -> list[int]:
    """Pids of the processes whose environment names ``launcher`` as their movierec --nproc launcher."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and f"MOVIEREC_LAUNCHER_PID={launcher}".encode() in \
                    (proc / "environ").read_bytes().split(b"\0"):
                found.append(int(proc.name))
        except OSError:
            continue
    return found


@pytest.mark.e2e
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the parent-death signal is Linux's")
def test_workers_die_with_a_killed_launcher(data, env, tmp_path) -> None:
    """SIGKILL of `train --nproc 2` (no chance to stop its workers) ends the workers too: none goes on to write
    --out (issue 22, class 7)."""
    import signal
    import time

    out = tmp_path / "run"
    launcher = subprocess.Popen([sys.executable, "-m", "movierec", "train", "neumf", "--data", data, "--out", str(out),
                                 "--device", "cpu", "--nproc", "2", "--set", "epochs=200", "--set", "patience=0"],
                                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while len(_workers_of(launcher.pid)) < 2 and time.monotonic() < deadline and launcher.poll() is None:
            time.sleep(0.2)
        assert len(_workers_of(launcher.pid)) == 2, "the workers did not start"
        time.sleep(2)  # into training
        launcher.send_signal(signal.SIGKILL)
        launcher.wait(timeout=10)
        deadline = time.monotonic() + 30
        while _workers_of(launcher.pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _workers_of(launcher.pid) == []
        assert not (out / "metrics.json").exists()  # no orphan finished the run
    finally:
        for pid in _workers_of(launcher.pid):
            os.kill(pid, signal.SIGKILL)
        if launcher.poll() is None:
            launcher.kill()
