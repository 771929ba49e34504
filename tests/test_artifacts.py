import json

import numpy as np
import pytest

from movierec.artifacts import load_bundle, save_bundle
from movierec.data.dataset import Interactions
from movierec.errors import DataError
from movierec.models import Popularity


def fitted() -> Popularity:
    inter = Interactions(np.array([0, 0, 1]), np.array([0, 1, 1]), np.ones(3), np.zeros(3), 2, 3)
    return Popularity().fit(inter)


def test_a_failed_write_leaves_no_bundle_and_keeps_the_old_one(tmp_path) -> None:
    path = tmp_path / "bundle"

    def boom(tmp):
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        save_bundle(path, fitted(), extra=boom)
    assert not path.exists()
    assert not list(tmp_path.iterdir())  # no temporary folder left behind
    save_bundle(path, fitted())
    with pytest.raises(RuntimeError):
        save_bundle(path, fitted(), metrics={"x": 1}, extra=boom)
    assert not (path / "metrics.json").exists()  # the complete old bundle is still there
    assert load_bundle(path).model.counts_.tolist() == [1, 2, 0]


def test_not_a_bundle_errors_name_the_file(tmp_path) -> None:
    with pytest.raises(DataError, match=r"config\.json not found"):
        load_bundle(tmp_path)
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(DataError, match=r"config\.json, line 1"):
        load_bundle(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(DataError, match="not a movierec bundle"):
        load_bundle(tmp_path)


def test_bundle_holds_no_pickle(tmp_path) -> None:
    path = save_bundle(tmp_path / "b", fitted())
    for f in path.iterdir():
        assert not f.read_bytes().startswith(b"\x80"), f  # pickle protocol header
    cfg = json.loads((path / "config.json").read_text())
    assert cfg["model"] == "popularity" and cfg["n_items"] == 3
