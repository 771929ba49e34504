"""Serving a study folder: its final models (an older study without them: its best saved model), held-out movies
never recommended, and the user segments behind GET /v1/users/{id}/segment."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("fastapi")


@pytest.fixture(scope="module")
def study_with_models(quick_study, tmp_path_factory) -> Path:
    """A copy of the quick study: it saves no run's model, and its best run's final model."""
    out, _, _ = quick_study
    copy = tmp_path_factory.mktemp("served-study") / "study"
    shutil.copytree(out, copy)
    return copy


def test_a_study_folder_serves_its_final_models(study_with_models: Path) -> None:
    from movierec.serving import Service

    rows = json.loads((study_with_models / "results.json").read_text())
    best = max(rows, key=lambda r: r["NDCG@10 [full]"])
    assert best["model"] == "ItemKNN"
    service = Service.open([study_with_models])
    assert list(service.models) == ["itemknn"]
    served = service.models["itemknn"]
    assert served.study_dir == study_with_models and served.path.parent.parent.name == "final"
    info = service.model_info()[0]
    assert info["segments"] and info["similar"]
    assert info["test_metrics"]["full"]["NDCG@10"] == best["NDCG@10 [full]"]  # the figures of the run it is like


def test_a_study_without_final_models_serves_its_best_saved_run(study_with_models: Path, mls, tmp_path) -> None:
    """As studies written before 0.2 did: its best run's bundle in runs/."""
    from movierec.data.splits import Split
    from movierec.runs import slug as _slug
    from movierec.runs.folders import train_run
    from movierec.serving import Service

    old = tmp_path / "study"
    shutil.copytree(study_with_models, old)
    shutil.rmtree(old / "final")
    context = json.loads((old / "study.json").read_text())
    context.pop("finals")
    (old / "study.json").write_text(json.dumps(context))
    split = Split.load(old / "split")
    for name, model in (("ItemKNN", "itemknn"), ("Popularity", "popularity")):
        train_run(model, mls, old / "runs" / _slug(name) / "model", split=split)
    service = Service.open([old])
    assert list(service.models) == ["itemknn"] and service.models["itemknn"].path.parent.name == "ItemKNN"


def test_held_out_movies_of_the_study_split_are_never_recommended(study_with_models: Path) -> None:
    from movierec.data.splits import Split
    from movierec.serving import Service

    service = Service.open([study_with_models])
    served = service.models["itemknn"]
    split = Split.load(study_with_models / "split")
    for u in np.unique(split.test.user)[:25]:
        raw = int(served.bundle.users.raw(u))
        got = {r["movie_id"] for r in service.for_user(raw, 20)["recommendations"]}
        held = set(served.bundle.items.raw(split.test.item[split.test.user == u]).tolist())
        held |= set(served.bundle.items.raw(split.valid.item[split.valid.user == u]).tolist())
        assert not got & held


def test_segment_endpoint(study_with_models: Path) -> None:
    from fastapi.testclient import TestClient

    from movierec.serving import Service
    from movierec.serving.api import create_app

    labels = pd.read_parquet(study_with_models / "segments" / "segments.parquet")
    profiles = pd.read_csv(study_with_models / "segments" / "profiles.csv", index_col=0)
    user, seg = (int(x) for x in labels[labels["segment"] >= 0].iloc[0][["userId", "segment"]])
    with TestClient(create_app(service=Service.open([study_with_models]))) as c:
        body = c.get(f"/v1/users/{user}/segment").json()
        assert body["segment"] == seg and body["name"] == profiles.loc[seg, "name"]
        assert body["profile"]["users"] == int(profiles.loc[seg, "users"])
        r = c.get("/v1/users/999999/segment")
        assert r.status_code == 404 and r.json()["detail"] == "unknown user id 999999"
