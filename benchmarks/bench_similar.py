"""Item-to-item similarity ("movies like this one") against the whole ml-20m catalogue (27,278 movies).

- core: features built once (SimilarityIndex), then one query row scored against every movie + top-10, for
  genres, year and all, with each measure: median over 20 query movies (seed 0); target under 50 ms.
  "query" adds resolving the id and building the result DataFrame (what the CLI and a service do).
- first call: ``similar_movies(catalog, "Toy Story", ...)`` on a fresh catalogue object, so it includes
  building the features and the title index (median of 3).
- cli: ``movierec similar "Toy Story" --data ml-20m --features genres --json`` as a subprocess (imports,
  loading the cached catalogue and everything else a user waits for).

    .venv/bin/python benchmarks/bench_similar.py [--repeat 20] [--data /work/shared/data/ml-20m]
"""

from __future__ import annotations

import argparse
import copy
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _util as U
import numpy as np

TARGET_CORE_S = 0.050
KINDS = ("genres", "year", "all")
MEASURES = ("dot", "cosine", "euclidean")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="/work/shared/data/ml-20m", help="folder with movies.csv (ratings optional)")
    ap.add_argument("--repeat", type=int, default=20)
    args = ap.parse_args()

    from movierec.data import load_catalog
    from movierec.similar import SimilarityIndex, similar_movies

    folder = Path(args.data)
    if not (folder / "movies.csv").is_file():
        sys.exit(f"{folder}/movies.csv not found")
    t0 = time.perf_counter()
    catalog = load_catalog(folder, fetch_missing=False)
    load_first = time.perf_counter() - t0
    t0 = time.perf_counter()
    catalog = load_catalog(folder, fetch_missing=False)
    load_cached = time.perf_counter() - t0
    n_movies = len(catalog.movies)
    print(f"{folder}: {n_movies:,} movies; load_catalog {load_first:.3f} s (first), {load_cached:.3f} s (cached)")

    rows: list[dict] = []
    for kind in KINDS:
        t0 = time.perf_counter()
        index = SimilarityIndex.build(catalog, kind)
        build_s = time.perf_counter() - t0
        m = index.features.matrix
        nonempty = np.flatnonzero(np.diff(m.indptr) > 0)
        queries = np.random.default_rng(0).choice(nonempty, size=args.repeat, replace=False)
        index.resolve("1")  # title index built outside the timed loop
        for measure in MEASURES:
            index.top_k(int(queries[0]), measure, 10)  # warm-up
            core = []
            for r in queries:
                t0 = time.perf_counter()
                index.top_k(int(r), measure, 10)
                core.append(time.perf_counter() - t0)
            full = []
            for r in queries:
                mid = str(int(index.features.item_ids[r]))
                t0 = time.perf_counter()
                index.query(mid, measure, 10)
                full.append(time.perf_counter() - t0)
            firsts = []
            for _ in range(3):
                fresh = copy.copy(catalog)  # a new object: nothing cached on it
                t0 = time.perf_counter()
                similar_movies(fresh, "Toy Story", measure=measure, features=kind, k=10)
                firsts.append(time.perf_counter() - t0)
            core_ms = statistics.median(core) * 1e3
            rows.append({
                "features": kind, "measure": measure, "n_features": m.shape[1], "nnz": int(m.nnz),
                "build_ms": build_s * 1e3, "core_ms": core_ms, "core_max_ms": max(core) * 1e3,
                "query_ms": statistics.median(full) * 1e3, "first_call_ms": statistics.median(firsts) * 1e3,
                "status": U.status(core_ms / 1e3, TARGET_CORE_S, False),
            })

    cmd = [sys.executable, "-m", "movierec.cli", "similar", "Toy Story", "--data", str(folder), "--features",
           "genres", "--json"]
    cli = []
    for _ in range(3):
        t0 = time.perf_counter()
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        cli.append(time.perf_counter() - t0)
        if p.returncode != 0:
            sys.exit(f"CLI failed: {p.stderr}")
    cli_s = statistics.median(cli)

    U.print_table(rows, [("features", "features"), ("measure", "measure"), ("n_features", "F"), ("nnz", "nnz"),
                         ("build_ms", "build ms"), ("core_ms", "core ms (median)"), ("core_max_ms", "core max ms"),
                         ("query_ms", "query ms"), ("first_call_ms", "first call ms"), ("status", "< 50 ms")])
    print(f"CLI `movierec similar 'Toy Story' --data {folder} --features genres --json`: {cli_s:.2f} s (median of 3)")
    path = U.write_json("bench_similar.json", {
        "when": U.stamp(), "machine": U.machine_info(), "data": str(folder), "n_movies": n_movies,
        "repeat": args.repeat, "target_core_ms": TARGET_CORE_S * 1e3, "load_catalog_first_s": load_first,
        "load_catalog_cached_s": load_cached, "rows": rows, "cli_s": cli_s, "cli_runs_s": cli,
    })
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
