"""Recommendations for every user of ml-20m's shape: ``movierec recommend RUN --users all --out recs.parquet``.

Models of ml-20m's shape (138,493 users, 26,744 movies, 20M training ratings) with weights that are random but
of the right size (the cost of scoring does not depend on the values): GMF with 64 factors (scored by the
numpy engine, as ``recommend`` does), NeuMF (its default settings, numpy engine too) and ItemKNN with 100
neighbours per movie. Each is saved as a bundle, opened as ``recommend`` opens it, and timed on the top 10 of
every user (masking the training ratings) and on one user at a time (what a server request costs without
its per-user cache). Peak memory is measured in a fresh process per model.

    python benchmarks/bench_recommend.py [--quick] [--models gmf,neumf,itemknn]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _util as U

SHAPES = {"full": (138_493, 26_744, 20_000_263), "quick": (6_040, 3_706, 1_000_209)}


def _seen(n_users: int, n_items: int, n_ratings: int, rng: np.random.Generator) -> sp.csr_matrix:
    users = rng.integers(0, n_users, n_ratings)
    pop = rng.zipf(1.3, n_items).astype(np.float64)
    items = rng.choice(n_items, n_ratings, p=pop / pop.sum())
    m = sp.csr_matrix((np.ones(n_ratings, np.float32), (users, items)), shape=(n_users, n_items))
    m.sum_duplicates()
    m.data[:] = 1
    return m


def _model(name: str, seen: sp.csr_matrix, rng: np.random.Generator):
    from movierec.models import build_model

    n_users, n_items = seen.shape
    if name == "itemknn":
        model = build_model("itemknn", {"k": 100})
        cols = rng.integers(0, n_items, (n_items, 100))
        w = sp.csr_matrix((rng.random(n_items * 100).astype(np.float32), (np.repeat(np.arange(n_items), 100),
                                                                          cols.ravel())), shape=(n_items, n_items))
        w.sum_duplicates()
        model.seen_, model.w_ = seen, w.T.tocsr()
        return model
    settings = {"factors": 64} if name == "gmf" else {}  # NeuMF: its defaults, as the study trains it
    model = build_model(name, settings)
    model.seen_ = seen
    model.net_ = model.build_net(n_users, n_items).eval()
    return model


def phase(args: list[str]) -> dict:
    from movierec.artifacts import save_bundle
    from movierec.serving import ServedModel
    from movierec.serving.batch import recommend_users_table

    name, shape_name = args
    n_users, n_items, n_ratings = SHAPES[shape_name]
    rng = np.random.default_rng(0)
    seen = _seen(n_users, n_items, n_ratings, rng)
    with tempfile.TemporaryDirectory() as tmp:
        save_bundle(Path(tmp) / "run", _model(name, seen, rng))
        t0 = time.perf_counter()
        served = ServedModel.open(Path(tmp) / "run")
        load_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        table = recommend_users_table(served, None, 10)
        all_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        n_one = 50
        for u in rng.integers(0, n_users, n_one):
            served.recommend_users(np.array([u]), 10)
        one_ms = (time.perf_counter() - t0) / n_one * 1000
    return {"model": name, "users": n_users, "movies": n_items, "training_ratings": int(seen.nnz),
            "load_s": round(load_s, 2), "all_users_top10_s": round(all_s, 2),
            "users_per_s": round(n_users / all_s), "rows": len(table), "one_user_ms": round(one_ms, 2)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="a 1M-rating shape (ml-1m's) instead of ml-20m's")
    p.add_argument("--models", default="gmf,neumf,itemknn")
    a = p.parse_args()
    shape = "quick" if a.quick else "full"
    rows = [U.run_child(Path(__file__), ["--child", "bench", m, shape], timeout=3600) for m in a.models.split(",")]
    for r in rows:
        r["peak_rss_gb"] = round(r["peak_rss_gb"], 2)
        r["wall_s"] = round(r["wall_s"], 1)
    U.print_table(rows, [("model", "model"), ("users", "users"), ("movies", "movies"), ("load_s", "load s"),
                         ("all_users_top10_s", "top-10 of all users, s"), ("users_per_s", "users/s"),
                         ("one_user_ms", "one user, ms"), ("peak_rss_gb", "peak RSS GB")])
    name = "bench_recommend" + ("_quick" if a.quick else "") + ".json"
    U.write_json(name, {"machine": U.machine_info(), "date": U.stamp(), "shape": shape, "rows": rows})


if __name__ == "__main__":
    if "--child" in sys.argv:
        U.child_main({"bench": phase})
    else:
        main()
