"""Written folders and files get the permissions the user's umask gives (issue 10): bundles, cache entries,
extracted releases, not mkdtemp's private 0700 or safetensors' 0600."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from movierec.artifacts import save_bundle
from movierec.data.dataset import Interactions
from movierec.data.load import load_dataset
from movierec.data.synthetic import write_synthetic
from movierec.fsutil import atomic_write_bytes, atomic_write_dir
from movierec.models import Popularity

UMASKS = [0o022, 0o077]


@pytest.fixture(params=UMASKS, ids=lambda m: f"umask{m:03o}")
def umask(request: pytest.FixtureRequest) -> Iterator[int]:
    old = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(old)


def mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


def assert_umask_modes(root: Path, mask: int) -> None:
    """root and every folder under it are 0o777 & ~mask; every file 0o666 & ~mask."""
    assert mode(root) == 0o777 & ~mask, f"{root}: {oct(mode(root))}"
    seen = 0
    for p in root.rglob("*"):
        want = 0o777 & ~mask if p.is_dir() else 0o666 & ~mask
        assert mode(p) == want, f"{p}: {oct(mode(p))}, expected {oct(want)}"
        seen += 1
    assert seen, f"{root} is empty"


def test_bundle_gets_the_umask_permissions(tmp_path: Path, umask: int) -> None:
    inter = Interactions(np.array([0, 0, 1]), np.array([0, 1, 1]), np.ones(3), np.zeros(3), 2, 3)
    path = save_bundle(tmp_path / "bundle", Popularity().fit(inter), metrics={"x": 1})
    assert {"config.json", "weights.safetensors", "ids.parquet", "metrics.json"} <= {p.name for p in path.iterdir()}
    assert_umask_modes(path, umask)
    expected = {0o022: (0o755, 0o644), 0o077: (0o700, 0o600)}[umask]
    assert (mode(path), mode(path / "weights.safetensors")) == expected
    # replacing a bundle keeps the rule
    save_bundle(path, Popularity().fit(inter))
    assert_umask_modes(path, umask)
    assert not [p for p in tmp_path.iterdir() if p.name != "bundle"]  # no temporary folders left


def test_cache_entry_gets_the_umask_permissions(tmp_path: Path, umask: int, monkeypatch: pytest.MonkeyPatch) -> None:
    cache = tmp_path / "cache"
    monkeypatch.setenv("MOVIEREC_CACHE_DIR", str(cache))
    folder = write_synthetic(tmp_path / "synth", 80, 300, 3000, seed=1)
    ds = load_dataset(folder)
    assert len(ds.interactions) > 0
    entries = sorted((cache / "parsed").iterdir())
    assert {e.name.split("-")[1] for e in entries} == {"ratings", "catalog"}
    for entry in entries:
        assert {"meta.json"} < {p.name for p in entry.iterdir()}
        assert_umask_modes(entry, umask)


def test_atomic_writes_keep_execute_bits_and_links(tmp_path: Path, umask: int) -> None:
    def write(tmp: Path) -> None:
        (tmp / "sub").mkdir(mode=0o700)
        (tmp / "sub" / "data.bin").write_bytes(b"x")
        os.chmod(tmp / "sub" / "data.bin", 0o600)
        (tmp / "run.sh").write_text("#!/bin/sh\n")
        os.chmod(tmp / "run.sh", 0o700)
        (tmp / "link").symlink_to("run.sh")

    out = atomic_write_dir(tmp_path / "out", write)
    assert mode(out) == mode(out / "sub") == 0o777 & ~umask
    assert mode(out / "sub" / "data.bin") == 0o666 & ~umask
    assert mode(out / "run.sh") == 0o777 & ~umask
    assert (out / "link").is_symlink()
    f = atomic_write_bytes(tmp_path / "file.txt", b"y")
    assert mode(f) == 0o666 & ~umask
