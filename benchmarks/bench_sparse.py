"""Training samples/s against the number of users and items: dense Adam against row-wise (lazy) Adam.

For each (users, items) shape, random interactions (``--positives`` of them, 4 sampled negatives each) train
a GMF with 64 factors and a NeuMF with 64 predictive factors through the trainer shell for one epoch at
batch 4,096 on the CPU, once with ``sparse=off`` (fused Adam over whole tables) and once with ``sparse=on``
(row-wise Adam over the rows a batch touched). A dense step grows with the tables; a row-wise one with the
batch. The trainer's ``sparse=auto`` switches at 16 table rows per sample of a batch (65,536 rows at batch
4,096). One epoch after a warm-up epoch, median of ``--repeat``.

    python benchmarks/bench_sparse.py [--quick] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _util as U

SHAPES = [(610, 9_000), (6_040, 3_706), (30_000, 10_000), (69_878, 10_677), (138_493, 26_744)]


def _interactions(n_users: int, n_items: int, n: int, rng: np.random.Generator):
    from movierec.data.dataset import Interactions

    u = rng.integers(0, n_users, n)
    i = np.minimum(rng.zipf(1.2, n) - 1, n_items - 1)
    i = (i + u * 7) % n_items  # spread each user's items
    keys = np.unique(u.astype(np.int64) * n_items + i)
    u, i = keys // n_items, keys % n_items
    return Interactions(u, i, np.ones(len(u)), np.arange(len(u)), n_users, n_items)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="two shapes, fewer positives")
    ap.add_argument("--positives", type=int, default=200_000)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1: steady on a shared machine)")
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from movierec.models import build_model
    from movierec.models.base import RunContext

    shapes = SHAPES[:2] if args.quick else SHAPES
    positives = 20_000 if args.quick else args.positives
    rows = []
    for n_users, n_items in shapes:
        train = _interactions(n_users, n_items, positives, np.random.default_rng(0))
        for model in ("gmf", "neumf"):
            settings = {"factors": 64, "epochs": 2, "patience": 0, "batch_size": 4096}
            row = {"users": n_users, "items": n_items, "model": model, "positives": len(train.user)}
            for mode in ("off", "on"):
                runs = []
                for _ in range(args.repeat):
                    m = build_model(model, {**settings, "sparse": mode})
                    m.fit(train, None, None, RunContext(device="cpu"))
                    runs.append(m.fit_report_.train_log[-1]["samples_per_s"])
                row[f"{'dense' if mode == 'off' else 'row_wise'}_samples_per_s"] = round(float(np.median(runs)))
            row["speedup"] = round(row["row_wise_samples_per_s"] / row["dense_samples_per_s"], 2)
            rows.append(row)
            print(json.dumps(row), flush=True)
    result = {"machine": U.machine_info(), "date_utc": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
              "torch_threads": args.threads, "batch_size": 4096, "rows": rows}
    out = args.out or U.RESULTS_DIR / f"bench_sparse{'_quick' if args.quick else ''}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    U.print_table(rows, [("users", "users"), ("items", "items"), ("model", "model"),
                         ("dense_samples_per_s", "dense samples/s"), ("row_wise_samples_per_s", "row-wise samples/s"),
                         ("speedup", "row-wise / dense")])
    print(f"-> {out}")


if __name__ == "__main__":
    main()
