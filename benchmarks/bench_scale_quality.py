"""Does what makes training fast keep its quality? Validation and test figures on ml-latest-small (CPU):

- ``sparse``: row-wise (lazy) Adam on the embedding tables (``sparse=on``) against dense Adam (``off``), at the
  study's default settings (30 epochs at most, patience 4, batch 4,096);
- ``batch``: the GPU's large batch (4,096 x 16 = 65,536, learning rate x 4: the trainer's square-root scaling)
  against batch 4,096, on the CPU; the large batch takes 16x fewer steps an epoch, so it gets twice the epochs
  (60) and patience (8).

Each run reports the kept epoch's validation HR@10 / NDCG@10 (sampled-100), test sampled HR@10 / NDCG@10 and
full-ranking NDCG@10. With about 610 users a standard error of NDCG@10 is about 0.015 (sampled) and 0.007
(full): differences below that are noise.

    python benchmarks/bench_scale_quality.py [--what sparse,batch] [--models gmf,neumf]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _util as U


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--what", default="sparse,batch")
    ap.add_argument("--models", default="gmf,neumf")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()

    import torch

    from movierec.data import load_dataset
    from movierec.data.splits import make_split
    from movierec.evaluation.protocols import evaluate
    from movierec.fitting import fit_model
    from movierec.models import build_model
    from movierec.models.base import RunContext

    ds = load_dataset(U.ML_LATEST_SMALL)
    split = make_split(ds, "loo", 42)
    rows = []
    for what in args.what.split(","):
        for name in args.models.split(","):
            lr = build_model(name).config.train.lr
            variants = ([{"sparse": "on"}, {"sparse": "off"}] if what == "sparse" else
                        [{"batch_size": 4096, "lr": lr},
                         {"batch_size": 4096 * 16, "lr": lr * math.sqrt(16), "epochs": 60, "patience": 8}])
            for settings in variants:
                t0 = time.perf_counter()
                model, report = fit_model(name, settings, split, ds.catalog, RunContext(device="cpu"))
                sampled = evaluate(model, split, "sampled-100", "test", (10,)).metrics
                full = evaluate(model, split, "full", "test", (10,)).metrics
                row = {"what": what, "model": name, **settings, "epochs_run": report.epochs,
                       "best_epoch": report.best_epoch, "valid_HR@10": round(report.best_valid["HR@10"], 4),
                       "valid_NDCG@10": round(report.best_valid["NDCG@10"], 4),
                       "test_HR@10": round(sampled["HR@10"], 4), "test_NDCG@10": round(sampled["NDCG@10"], 4),
                       "test_full_NDCG@10": round(full["NDCG@10"], 4),
                       "samples_per_s": round(report.samples_per_s or 0), "seconds": round(time.perf_counter() - t0, 1)}
                rows.append(row)
                print(json.dumps(row), flush=True)
    result = {"machine": U.machine_info(), "date_utc": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
              "torch_threads": torch.get_num_threads(), "rows": rows}
    out = args.out or U.RESULTS_DIR / "bench_scale_quality.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"-> {out}")


if __name__ == "__main__":
    main()
