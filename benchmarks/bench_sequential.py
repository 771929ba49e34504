"""The sequential models' losses and settings, compared on ml-latest-small's validation items only.

Each run fits a model (SASRec or GRU4Rec) on the leave-one-out training part with early stopping on the
validation items (sampled-100 NDCG@10, the trainer's rule), then scores the validation items under both
protocols (the fitted model reads the training history, which ends just before the validation item). Choices
(the default loss, GRU4Rec's defaults) are made from these figures; the test items are not read here
(``bench_models.py`` tests the chosen defaults beside the peers).

    python benchmarks/bench_sequential.py --runs "sasrec:loss=ce" "sasrec:loss=sampled" "gru4rec:hidden=128"
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
from movierec.models import RunContext, build_model


def _settings(text: str) -> tuple[str, dict[str, str]]:
    model, _, rest = text.partition(":")
    return model, dict(kv.split("=", 1) for kv in rest.split(",") if kv)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", nargs="+", required=True, help="MODEL[:key=value,...]")
    ap.add_argument("--data", default=str(U.ML_LATEST_SMALL))
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "bench_sequential.json"))
    args = ap.parse_args()
    ds = load_dataset(args.data)
    split = make_split(ds, "loo", seed=42)
    out_path = Path(args.out)
    old = json.loads(out_path.read_text()) if out_path.exists() else {}
    rows = {r["run"]: r for r in old.get("rows", [])}
    for text in args.runs:
        name, given = _settings(text)
        model = build_model(name, given)
        t0 = time.perf_counter()
        model.fit(split.train, ds.catalog, split.valid, RunContext())
        fit_s = time.perf_counter() - t0
        report = model.fit_report_
        s = evaluate(model, split, "sampled-100", part="valid", ks=(10,))
        f = evaluate(model, split, "full", part="valid", ks=(10, 20))
        se = float(np.std(f.per_user["NDCG@10"], ddof=1) / np.sqrt(len(f.per_user["NDCG@10"])))
        epoch_s = [r["seconds"] for r in report.train_log]
        row = {"run": text, "model": name, "settings": given, "fit_s": round(fit_s, 1),
               "epoch_s": round(float(np.median(epoch_s)), 2), "best_epoch": report.best_epoch,
               "epochs_run": report.epochs, "valid_sampled_HR@10": round(s.metrics["HR@10"], 4),
               "valid_sampled_NDCG@10": round(s.metrics["NDCG@10"], 4),
               "valid_full_NDCG@10": round(f.metrics["NDCG@10"], 4), "se_valid_full_NDCG@10": round(se, 4),
               "valid_full_Recall@20": round(f.metrics["Recall@20"], 4),
               "curve_sampled_NDCG@10": [round(r.get("valid_NDCG@10", float("nan")), 4) for r in report.train_log]}
        rows[text] = row
        print(json.dumps(row), flush=True)
        out_path.write_text(json.dumps({"machine": U.machine_info(), "date": time.strftime("%Y-%m-%d"),
                                        "data": args.data, "rows": list(rows.values())}, indent=1))


if __name__ == "__main__":
    main()
