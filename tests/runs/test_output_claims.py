"""Checkpoints are outputs, and one output has one writer (issue 22, classes 1 and 2).

``movierec train --out O`` keeps its per-epoch checkpoint in ``O.ckpt``: only the same model, settings and data,
resuming, may replace it; otherwise ``--force`` is needed, and a folder there that movierec did not write is
never deleted. ``--resume`` never replaces a finished run. Every output and registry has an advisory lock: a
second writer waits (the registry) or refuses in one line (an output); both never succeed.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import run_cli
from tests.data_edits import write_small

GMF = ("--set", "epochs=3", "--set", "factors=8", "--set", "patience=0")


@pytest.fixture(scope="module")
def syn(tmp_path_factory) -> str:
    return str(write_small(tmp_path_factory.mktemp("claims") / "syn", seed=5))


def _tree(path: Path) -> dict[str, bytes]:
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


def _interrupted(monkeypatch, capsys, syn: str, out: Path, *settings: str) -> None:
    """`train gmf --out out` stopped by Ctrl-C once epoch 1's checkpoint is written (exit 130)."""
    from movierec.training import trainer

    real = trainer.save_checkpoint

    def save_then_stop(path, net, best, opt, generator, meta):
        real(path, net, best, opt, generator, meta)
        raise KeyboardInterrupt

    monkeypatch.setattr(trainer, "save_checkpoint", save_then_stop)
    code, _, err = run_cli(monkeypatch, capsys, "train", "gmf", "--data", syn, "--out", str(out), *settings)
    monkeypatch.setattr(trainer, "save_checkpoint", real)
    assert code == 130, err
    assert Path(f"{out}.ckpt", "state.json").is_file() and not out.exists()


def _refused(monkeypatch, capsys, *args: str) -> str:
    code, out, err = run_cli(monkeypatch, capsys, *args)
    assert code == 2, (out, err)
    errors = [line for line in err.strip().splitlines() if line.startswith("error:")]  # after any progress lines
    assert len(errors) == 1 and err.strip().endswith(errors[0]) and "Traceback" not in err, err
    return errors[0]


def test_an_interrupted_runs_checkpoint_is_resumed_only_by_the_same_run(syn, tmp_path, monkeypatch, capsys) -> None:
    out = tmp_path / "gmf"
    ckpt = Path(f"{out}.ckpt")
    _interrupted(monkeypatch, capsys, syn, out, *GMF)
    kept = _tree(ckpt)
    assert json.loads((ckpt / "state.json").read_text())["run"]  # the run's key hash, written with the state

    # a fresh run, another model, other settings: refused, the checkpoint untouched
    assert "--resume continues it" in _refused(monkeypatch, capsys, "train", "gmf", "--data", syn, "--out", str(out),
                                               *GMF)
    for other in (("itemknn",), ("gmf", *GMF[:-2], "--set", "patience=1")):
        msg = _refused(monkeypatch, capsys, "train", *other, "--data", syn, "--out", str(out), "--resume")
        assert "another run" in msg and str(ckpt) in msg
    assert _tree(ckpt) == kept and not out.exists()

    # the same run resumes: epochs 2 and 3 follow epoch 1, and the checkpoint goes once the folder is written
    code, _, err = run_cli(monkeypatch, capsys, "train", "gmf", "--data", syn, "--out", str(out), *GMF,
                           "--resume", "--json")
    assert code == 0, err
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in log] == [1, 2, 3] and not ckpt.exists()

    # --resume never replaces the finished run; --force does
    finished = _tree(out)
    assert "finished run" in _refused(monkeypatch, capsys, "train", "gmf", "--data", syn, "--out", str(out), *GMF,
                                      "--resume")
    assert _tree(out) == finished
    code, _, err = run_cli(monkeypatch, capsys, "train", "popularity", "--data", syn, "--out", str(out), "--force")
    assert code == 0, err


def test_force_discards_an_interrupted_checkpoint(syn, tmp_path, monkeypatch, capsys) -> None:
    out = tmp_path / "gmf"
    _interrupted(monkeypatch, capsys, syn, out, *GMF)
    code, _, err = run_cli(monkeypatch, capsys, "train", "popularity", "--data", syn, "--out", str(out), "--force")
    assert code == 0, err
    assert not Path(f"{out}.ckpt").exists()


@pytest.mark.parametrize("flags", [(), ("--force",), ("--resume",), ("--resume", "--force")])
def test_a_folder_of_the_users_where_the_checkpoint_goes_is_never_deleted(syn, tmp_path, monkeypatch, capsys,
                                                                         flags) -> None:
    out = tmp_path / "run"
    mine = Path(f"{out}.ckpt")
    mine.mkdir()
    (mine / "notes.txt").write_text("my notes")
    (tmp_path / "run.refit.ckpt").write_text("a file of mine")
    msg = _refused(monkeypatch, capsys, "train", "popularity", "--data", syn, "--out", str(out), *flags)
    assert "movierec did not write" in msg
    assert (mine / "notes.txt").read_text() == "my notes" and (tmp_path / "run.refit.ckpt").is_file()
    assert not out.exists()


# -- concurrent writers: processes of their own ---------------------------------------------------------------
def _movierec(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "movierec", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def test_two_trains_to_one_out_never_both_succeed(syn, tmp_path) -> None:
    out = tmp_path / "run"
    procs = [_movierec("train", "itemknn", "--data", syn, "--out", str(out)) for _ in range(2)]
    results = [(p.wait(timeout=300), p.stderr.read()) for p in procs]
    codes = sorted(code for code, _ in results)
    assert codes == [0, 2], results
    err = next(e for code, e in results if code == 2).strip()
    assert len(err.splitlines()) == 1 and ("writing it right now" in err or "already there" in err), err


def test_an_output_another_command_holds_is_refused_in_one_line(syn, tmp_path) -> None:
    from movierec.fsutil import hold_lock, release_locks

    out = tmp_path / "held"
    hold_lock(out)  # this process is "the other command" until the lock is let go
    try:
        p = _movierec("train", "popularity", "--data", syn, "--out", str(out))
        code, err = p.wait(timeout=300), p.stderr.read()
    finally:
        release_locks()
    assert code == 2 and "another movierec command is writing it" in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_a_registry_writer_waits_for_the_lock_and_every_name_is_kept(tmp_path) -> None:
    from movierec.data.releases import _registry_path, imported
    from movierec.fsutil import locked

    folders = []
    for i in range(4):
        d = tmp_path / f"copy{i}"
        d.mkdir()
        (d / "movies.csv").write_text("movieId,title,genres\n1,Toy Story (1995),Animation\n")
        folders.append(d)
    code = ("import sys; from movierec.data.releases import import_folder; "
            "import_folder(sys.argv[1], sys.argv[2])")
    with locked(_registry_path()):  # the registry is busy: every writer waits
        procs = [subprocess.Popen([sys.executable, "-c", code, str(d), f"race-{d.name}"]) for d in folders]
        time.sleep(2)
        assert all(p.poll() is None for p in procs)
    assert all(p.wait(timeout=120) == 0 for p in procs)
    assert {f"race-{d.name}" for d in folders} <= set(imported())


def _events(path: Path, users: int) -> Path:
    path.write_text("customer,sku\n" + "".join(f"C-{u},SKU-{i}\n" for u in range(users) for i in range(3)))
    return path


def test_an_import_of_a_name_another_import_holds_is_refused(tmp_path) -> None:
    from movierec.data.own import imported_root
    from movierec.fsutil import hold_lock, release_locks

    hold_lock(imported_root() / "held-shop", "--name")
    try:
        p = _movierec("data", "import", str(_events(tmp_path / "e.csv", 5)), "--user", "customer", "--item", "sku",
                      "--name", "held-shop")
        code, err = p.wait(timeout=300), p.stderr.read()
    finally:
        release_locks()
    assert code == 2 and err.strip() == ("error: --name held-shop: another movierec command is writing it right "
                                         "now; wait for it to finish, or choose another")
    assert not (imported_root() / "held-shop").exists()


def test_two_imports_of_one_name_never_both_succeed(tmp_path) -> None:
    from movierec.data.releases import imported

    files = [_events(tmp_path / f"e{n}.csv", 40 + n) for n in range(2)]
    procs = [_movierec("data", "import", str(f), "--user", "customer", "--item", "sku", "--name", "race-shop")
             for f in files]
    results = [(p.wait(timeout=300), p.stderr.read()) for p in procs]
    assert sorted(code for code, _ in results) == [0, 2], results
    assert "race-shop" in imported()
