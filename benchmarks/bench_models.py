"""The strong models beside the peer libraries, on ml-latest-small, the same leave-one-out test items.

Each model (default settings) is a run of the run engine (:class:`movierec.runs.Session`), fitted on the
training part with the validation part for its choices (EASE's λ, the best epoch, content's blend), then
tested three ways, on the same test items:

- ``default``: the engine's default (``refit = true``): refitted on training + validation with its choices
  kept, so each user's test input is everything before the test item;
- ``no_refit`` (``refit = false``, the built-in study's setting): a model that scores histories exactly reads
  training + validation as a history with the weights fitted on training; a model with per-user parameters is
  refitted as above;
- ``train_only``: the fitted model reading the training part only (the rule before the run engine, for comparison: the
  validation interaction, which came before the test item, is missing from the input).

The peer rows (``../shared/reference/peers.md``, section 4) were measured on this split's test items; the peers
validate on item n-2 and test with the history up to n-1. Fit seconds are wall time of one process on this
machine; run it alone.

    python benchmarks/bench_models.py [--models ease,ials,multvae,multdae,sasrec,gru4rec] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _util as U
import numpy as np

from movierec.data import load_dataset
from movierec.data.splits import make_split
from movierec.evaluation.protocols import evaluate
from movierec.models import RunContext
from movierec.runs import RunSpec, Session

# ../shared/reference/peers.md section 4 (2-core CPU, 2026-11-26/30): sampled HR@10, NDCG@10, full NDCG@10,
# full Recall@20, fit seconds.
PEERS = {
    "RecBole EASE (reg 250)": (0.7328, 0.5235, 0.0391, 0.136, 76),
    "RecBole MultiVAE": (0.7295, 0.4889, 0.0407, 0.126, 207),
    "implicit ALS": (0.6869, 0.4846, 0.0359, 0.133, 1),
    "RecBole SASRec (defaults)": (0.7443, 0.5095, 0.0567, 0.162, 616),
    "RecBole GRU4Rec (defaults)": (0.7361, 0.4934, 0.0375, 0.134, 548),
    "RecBole NeuMF": (0.7262, 0.4836, 0.0268, 0.100, 611),
}


def _quality(model, split) -> dict[str, float]:
    """Test metrics with one standard error over users (the per-user values' std / sqrt(n))."""
    s = evaluate(model, split, "sampled-100", ks=(10,))
    f = evaluate(model, split, "full", ks=(10, 20))
    out = {"sampled_HR@10": s.metrics["HR@10"], "sampled_NDCG@10": s.metrics["NDCG@10"],
           "full_NDCG@10": f.metrics["NDCG@10"], "full_Recall@20": f.metrics["Recall@20"]}
    for key, res, metric in (("sampled_HR@10", s, "HR@10"), ("full_NDCG@10", f, "NDCG@10")):
        v = res.per_user[metric]
        out[f"se_{key}"] = float(np.std(v, ddof=1) / np.sqrt(len(v)))
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default="popularity,itemknn,ease,ials,multvae,multdae,sasrec,gru4rec")
    ap.add_argument("--data", default=str(U.ML_LATEST_SMALL), help="a release name or folder")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "bench_models.json"))
    args = ap.parse_args()
    ds = load_dataset(args.data)
    split = make_split(ds, "loo", seed=42)
    rows = []
    for name in args.models.split(","):
        session = Session(ds, split)
        run = session.execute(RunSpec(name, name, {}, phases=("fit", "test")))
        no_refit, how = session.test_model(RunSpec(name, name, {}, refit=False), run.fitted, split, RunContext())
        row = {"model": name, "fit_s": round(run.row["fit_seconds"], 1), "refit_s": run.row.get("refit_seconds", 0.0),
               "no_refit_input": how, "choices": run.choices, "best_epoch": run.row.get("best_epoch"),
               "default": _quality(run.tested, split), "no_refit": _quality(no_refit, split),
               "train_only": _quality(run.fitted, split)}
        rows.append(row)
        print(json.dumps(row), flush=True)
    out = {"machine": U.machine_info(), "date": time.strftime("%Y-%m-%d"), "data": args.data, "rows": rows,
           "peers": {k: dict(zip(("sampled_HR@10", "sampled_NDCG@10", "full_NDCG@10", "full_Recall@20", "fit_s"),
                                 v, strict=True)) for k, v in PEERS.items()}}
    Path(args.out).write_text(json.dumps(out, indent=1))
    print(f"{'model':<12} {'fit s':>6} | refit (default): HR@10 NDCG@10 fullNDCG R@20 | no refit: same | "
          "train only: same")
    for r in rows:
        cells = [f"{r[k]['sampled_HR@10']:.4f} {r[k]['sampled_NDCG@10']:.4f} {r[k]['full_NDCG@10']:.4f} "
                 f"{r[k]['full_Recall@20']:.3f}" for k in ("default", "no_refit", "train_only")]
        print(f"{r['model']:<12} {r['fit_s']:>6} | " + " | ".join(cells))


if __name__ == "__main__":
    main()
