"""End-to-end tests of the ``movierec`` command, run as a user would (a subprocess)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


def run(*args: str, env_extra: dict | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, **(env_extra or {})}
    return subprocess.run([sys.executable, "-m", "movierec.cli", *args], capture_output=True, text=True,
                          env=env, timeout=300)


@pytest.fixture(scope="module")
def mls_dir(shared_data_dir: Path) -> str:
    return str(shared_data_dir / "ml-latest-small")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, mls_dir: str) -> Path:
    out = tmp_path_factory.mktemp("runs") / "itemknn"
    r = run("train", "itemknn", "--data", mls_dir, "--out", str(out), "--set", "k=50", "--json")
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    assert info["model"] == "itemknn" and info["valid"]["protocol"] == "sampled-100"
    return out


def test_data_info_json(mls_dir: str) -> None:
    r = run("data", "info", "--data", mls_dir, "--json")
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    assert (info["ratings"], info["users"], info["items"]) == (100_836, 610, 9_724)


def test_data_info_by_release_name_through_data_dir(shared_data_dir: Path) -> None:
    r = run("data", "info", "--data", "ml-latest-small", "--json",
            env_extra={"MOVIEREC_DATA_DIR": str(shared_data_dir)})
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["ratings"] == 100_836


def test_data_list_names_every_release() -> None:
    r = run("data", "list", "--json")
    assert r.returncode == 0, r.stderr
    names = {row["name"] for row in json.loads(r.stdout)}
    assert {"ml-100k", "ml-1m", "ml-10m", "ml-20m", "ml-25m", "ml-32m", "ml-latest-small", "ml-latest"} <= names


def test_split_writes_ncf_files_that_load_back(tmp_path: Path, mls_dir: str) -> None:
    out = tmp_path / "split"
    r = run("split", "--data", mls_dir, "--protocol", "loo", "--seed", "42", "--out", str(out), "--json")
    assert r.returncode == 0, r.stderr
    names = {p.name for p in out.iterdir()}
    assert {"ml-latest-small.train.rating", "ml-latest-small.test.rating", "ml-latest-small.test.negative",
            "train.parquet", "test.parquet"} <= names
    r2 = run("data", "info", "--data", str(out), "--json")
    assert r2.returncode == 0, r2.stderr
    info = json.loads(r2.stdout)
    assert info["predefined_split"] is True and info["ratings"] == 100_836


def test_train_evaluate_recommend(run_dir: Path) -> None:
    assert {"config.json", "weights.safetensors", "ids.parquet", "metrics.json"} <= {p.name for p in run_dir.iterdir()}
    for protocol in ("sampled-100", "full"):
        r = run("evaluate", str(run_dir), "--protocol", protocol, "--json")
        assert r.returncode == 0, r.stderr
        res = json.loads(r.stdout)
        assert res["protocol"] == protocol
        assert 0 < res["metrics"]["NDCG@10"] <= res["metrics"]["HR@10"] <= 1
    saved = json.loads((run_dir / "metrics.json").read_text())
    assert set(saved["test"]) == {"sampled-100", "full"}
    r = run("recommend", str(run_dir), "--user", "1", "-k", "5", "--json")
    assert r.returncode == 0, r.stderr
    recs = json.loads(r.stdout)["recommendations"]
    assert len(recs) == 5 and all(rec["title"] and not rec["title"].startswith("movie ") for rec in recs)
    assert [rec["rank"] for rec in recs] == [1, 2, 3, 4, 5]


def one_line_error(r: subprocess.CompletedProcess) -> str:
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, r.stderr
    assert "Traceback" not in r.stderr
    return lines[0]


def test_unknown_user_is_a_one_line_error(run_dir: Path) -> None:
    assert "999999" in one_line_error(run("recommend", str(run_dir), "--user", "999999"))


def test_unknown_dataset_is_a_one_line_error() -> None:
    assert "no-such-release" in one_line_error(run("data", "info", "--data", "no-such-release"))


def test_unknown_model_and_bad_setting(mls_dir: str, tmp_path: Path) -> None:
    assert "unknown model" in one_line_error(run("train", "nope", "--data", mls_dir, "--out", str(tmp_path / "x")))
    msg = one_line_error(run("train", "itemknn", "--data", mls_dir, "--out", str(tmp_path / "x"), "--set", "k=ten"))
    assert "k" in msg and "ten" in msg
    assert not (tmp_path / "x").exists()


def test_malformed_ratings_file_names_file_and_line(tmp_path: Path) -> None:
    d = tmp_path / "broken"
    d.mkdir()
    (d / "movies.csv").write_text("movieId,title,genres\n1,Toy Story (1995),Animation|Children\n")
    (d / "ratings.csv").write_text("userId,movieId,rating,timestamp\n1,1,4.0,1\n1,2,abc,2\n")
    msg = one_line_error(run("data", "info", "--data", str(d)))
    assert "ratings.csv" in msg and "line 3" in msg


def test_evaluate_a_folder_that_is_not_a_run(tmp_path: Path) -> None:
    assert "config.json" in one_line_error(run("evaluate", str(tmp_path)))


def test_compare_prints_both_protocols(mls_dir: str, tmp_path: Path) -> None:
    r = run("compare", "--data", mls_dir, "--models", "popularity", "--out", str(tmp_path), "--json")
    assert r.returncode == 0, r.stderr
    row = json.loads(r.stdout)["rows"][0]
    assert "HR@10 [sampled-100]" in row and "NDCG@10 [full]" in row
    assert (tmp_path / "results.md").exists() and (tmp_path / "results.csv").exists()


def test_train_neural_model_writes_train_log_and_recommends(tmp_path: Path, mls_dir: str) -> None:
    out = tmp_path / "gmf"
    r = run("train", "gmf", "--data", mls_dir, "--out", str(out), "--set", "epochs=2", "--set", "factors=8",
            "--resume", "--json")
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    assert info["epochs_run"] == 2 and info["best_epoch"] in (1, 2)
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert [rec["epoch"] for rec in log] == [1, 2] and "valid_NDCG@10" in log[0]
    assert not Path(f"{out}.ckpt").exists()  # the checkpoint is gone once the run folder is complete
    r = run("recommend", str(out), "--user", "1", "-k", "3", "--json")
    assert r.returncode == 0, r.stderr
    assert len(json.loads(r.stdout)["recommendations"]) == 3


def test_experiment_command(tmp_path: Path, mls_dir: str) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text('[defaults]\nepochs = 1\n\n[[run]]\nname = "pop"\nmodel = "popularity"\n\n'
                   '[[run]]\nname = "mlp"\nmodel = "mlp"\nembedding_dim = 8\n')
    r = run("experiment", str(cfg), "--data", mls_dir, "--out", str(tmp_path / "out"), "--json")
    assert r.returncode == 0, r.stderr
    assert [row["model"] for row in json.loads(r.stdout)["rows"]] == ["pop", "mlp"]
    assert "missing.toml" in one_line_error(run("experiment", str(tmp_path / "missing.toml"), "--data", mls_dir,
                                                "--out", str(tmp_path / "o2")))


def test_eda_command(mls_dir: str, tmp_path: Path) -> None:
    r = run("eda", "--data", mls_dir, "--out", str(tmp_path / "eda"), "--json")
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)
    assert summary["n_ratings"] == 100_836 and (tmp_path / "eda" / "eda.html").exists()
    r = run("eda", "--data", mls_dir, "--out", str(tmp_path / "eda2"))
    assert r.returncode == 0, r.stderr
    assert "100,836 ratings" in r.stdout and "eda.html" in r.stdout
    bad = run("eda", "--data", str(tmp_path / "nowhere"), "--out", str(tmp_path / "x"))
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1


def test_usage_errors_are_one_line_too() -> None:
    import subprocess
    import sys

    for args, message in ((["train", "gmf"], "Missing option '--data'"), (["nosuch"], "No such command 'nosuch'"),
                          (["recommend", "x", "-k", "abc"], "Invalid value for '-k'")):
        r = subprocess.run([sys.executable, "-m", "movierec", *args], capture_output=True, text=True)
        assert r.returncode == 2 and r.stderr.count("\n") == 1 and message in r.stderr, r.stderr
        assert "--help`)" in r.stderr
