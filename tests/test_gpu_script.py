"""benchmarks/gpu.sh and bench_gpu.py: the --small run on the CPU writes one complete JSON; no CUDA, no GPU figures."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
GPU_SH = REPO / "benchmarks" / "gpu.sh"
BENCH = REPO / "benchmarks" / "bench_gpu.py"


def _env(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "MOVIEREC_CACHE_DIR": str(tmp_path / "cache"),
            "MOVIEREC_BENCH_DATA": str(tmp_path / "bench-data")}


@pytest.mark.e2e
@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_gpu_sh_small_writes_every_figure(tmp_path: Path) -> None:
    out = tmp_path / "gpu.json"
    env = _env(tmp_path)
    env.pop("OUT", None)
    p = subprocess.run(["bash", str(GPU_SH), "--small", "--out", str(out)], capture_output=True, text=True,
                       env=env, cwd=tmp_path, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    d = json.loads(out.read_text())
    assert d["small"] is True and d["complete"] is True
    assert d["errors"] == {}, d["errors"]
    assert d["wall_s"] > 0
    assert d["machine"]["cpu_count"] and d["machine"]["torch"]
    assert d["machine"]["dependencies"]["missing"] == []
    r = d["results"]
    for batch in (4096, 16384):
        t = r[f"neumf_train_b{batch}"]
        assert t["batch"] == batch and t["samples_per_s"] > 0 and t["epochs"] == 2
        assert t["samples_per_s"] == t["epoch_samples_per_s"][-1]
    assert r["eval_full_top10"]["seconds"] > 0 and r["eval_full_top10"]["users"] > 0
    assert r["eval_sampled_s100"]["seconds"] > 0 and r["eval_sampled_s100"]["users"] > 0
    assert r["ease_fit"]["fit_s"] > 0 and r["ease_fit"]["chosen"] == {"l2": 250.0}
    tr = r["torchrun_2proc"]
    assert "torchrun_2proc" not in d["errors"]
    if isinstance(tr, str):
        assert tr.startswith("skipped: "), tr
    else:
        assert tr["wall_s"] > 0 and tr["processes"] == 2 and tr["device"] == "cpu", tr


def test_bench_gpu_without_cuda_refuses(tmp_path: Path) -> None:
    out = tmp_path / "gpu.json"
    env = {**_env(tmp_path), "CUDA_VISIBLE_DEVICES": ""}  # no GPU even on a machine that has one
    p = subprocess.run([sys.executable, str(BENCH), "--out", str(out)], capture_output=True, text=True, env=env,
                       timeout=120)
    assert p.returncode == 2
    assert p.stderr.strip() == "no CUDA GPU: run with --small on a CPU"
    assert p.stdout == ""
    assert not out.exists()
