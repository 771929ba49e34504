"""The strong models beside the peer libraries, on ml-latest-small, under both ways of training.

For each model (default settings): fit on the training part with the validation part for its choices
(EASE's λ, the best epoch), as the study does, and evaluate the test items under sampled-100 and full
ranking ("study protocol"). Then fit again on training + validation with those choices fixed and evaluate
the same test items ("peer protocol": each user trains on everything but the test item, which is how the
peer figures in ../shared/reference/peers.md, section 4, were measured; EASE with λ = 250 trained that way
reproduces RecBole's full-ranking NDCG@10 0.0391 and Recall@20 0.136). Fit seconds are wall time of one
process on this machine; run it alone.

    python benchmarks/bench_models.py [--models ease,ials,multvae,multdae,sasrec] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _util as U

from movierec.data import load_dataset
from movierec.data.splits import make_split, with_valid_in_train
from movierec.evaluation.protocols import evaluate
from movierec.fitting import fit_model, refit_with_choices

# ../shared/reference/peers.md section 4 (2-core CPU, 2026-11-26/30): sampled HR@10, NDCG@10, full NDCG@10,
# full Recall@20, fit seconds; trained on everything but the test item.
PEERS = {
    "RecBole EASE (reg 250)": (0.7328, 0.5235, 0.0391, 0.136, 76),
    "RecBole MultiVAE": (0.7295, 0.4889, 0.0407, 0.126, 207),
    "implicit ALS": (0.6869, 0.4846, 0.0359, 0.133, 1),
    "RecBole SASRec (defaults)": (0.7443, 0.5095, 0.0567, 0.162, 616),
    "RecBole GRU4Rec (defaults)": (0.7361, 0.4934, 0.0375, 0.134, 548),
    "RecBole NeuMF": (0.7262, 0.4836, 0.0268, 0.100, 611),
}


def _quality(model, split) -> dict[str, float]:
    s = evaluate(model, split, "sampled-100", ks=(10,)).metrics
    f = evaluate(model, split, "full", ks=(10, 20)).metrics
    return {"sampled_HR@10": s["HR@10"], "sampled_NDCG@10": s["NDCG@10"], "full_NDCG@10": f["NDCG@10"],
            "full_Recall@20": f["Recall@20"]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default="popularity,itemknn,ease,ials,multvae,multdae,sasrec")
    ap.add_argument("--data", default=str(U.ML_LATEST_SMALL), help="a release name or folder")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "bench_models.json"))
    args = ap.parse_args()
    ds = load_dataset(args.data)
    split = make_split(ds, "loo", seed=42)
    peer_split = with_valid_in_train(split)
    rows = []
    for name in args.models.split(","):
        t0 = time.perf_counter()
        model, report = fit_model(name, {}, split, ds.catalog)
        fit_s = time.perf_counter() - t0
        study = _quality(model, split)
        t0 = time.perf_counter()
        refit, _ = refit_with_choices(name, {}, report, split, ds.catalog)
        refit_s = time.perf_counter() - t0
        peer = _quality(refit, peer_split)
        row = {"model": name, "fit_s": round(fit_s, 1), "refit_s": round(refit_s, 1), "chosen": report.chosen,
               "best_epoch": report.best_epoch, "study": study, "peer_protocol": peer}
        rows.append(row)
        print(json.dumps(row), flush=True)
    out = {"machine": U.machine_info(),
           "date": time.strftime("%Y-%m-%d"), "data": args.data, "rows": rows,
           "peers": {k: dict(zip(("sampled_HR@10", "sampled_NDCG@10", "full_NDCG@10", "full_Recall@20", "fit_s"),
                                 v, strict=True)) for k, v in PEERS.items()}}
    Path(args.out).write_text(json.dumps(out, indent=1))
    print(f"{'model':<12} {'fit s':>6} | study: HR@10 NDCG@10 fullNDCG R@20 | peer protocol: same | refit s")
    for r in rows:
        a, b = r["study"], r["peer_protocol"]
        print(f"{r['model']:<12} {r['fit_s']:>6} | {a['sampled_HR@10']:.4f} {a['sampled_NDCG@10']:.4f} "
              f"{a['full_NDCG@10']:.4f} {a['full_Recall@20']:.3f} | {b['sampled_HR@10']:.4f} "
              f"{b['sampled_NDCG@10']:.4f} {b['full_NDCG@10']:.4f} {b['full_Recall@20']:.3f} | {r['refit_s']}")


if __name__ == "__main__":
    main()
