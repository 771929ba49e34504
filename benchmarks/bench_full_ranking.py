"""Full ranking of every test user of ml-20m's shape with a 64-factor model, against its scoring matmuls alone.

Synthetic data of ml-20m's shape (138,493 users, 26,744 items, 20M ratings), the study's leave-one-out split, a
GMF with 64 factors and random weights of the right size, drawn with a trained model's spread (N(0, 0.3)) so
that scores are as distinct as a trained model's (the untrained N(0, 0.01) start makes nearly every score tie,
which a trained model does not). Timed, each the median of ``--repeat`` runs in one process:

- ``matmul_s``: the scoring matmuls alone: every test user's vector times every item's, float32, in the same
  user batches as the evaluation (torch, the model's device);
- ``score_s``: the model's own scoring (``score_tensor``) of every test user, in those batches;
- ``full_s``: ``evaluate_full(model, split, "test", ks=(10,))``: scoring, masking of each user's training and
  validation items, seeded tie-broken top-10, hits, NDCG/recall/precision and the beyond-accuracy metrics;
  ``full_scoring_s`` is the part of it spent in the model's scoring (timed inside the same run, batch by
  batch, so a machine shared with another job slows both alike): ``full_over_scoring`` is the split the
  issue asks for;
- ``sampled_s``: ``evaluate_sampled`` of every test user (1 + 99 candidates).

Target (issue 12): full ranking at most 1.5 x the scoring matmuls on the CPU (``full_over_scoring``; GMF's
scoring is one matmul with the bias as a 65th factor; ``full_over_matmul`` compares with ``matmul_s`` timed
in separate runs).

    python benchmarks/bench_full_ranking.py [--quick] [--repeat 3] [--threads N]

``--threads 1`` gives steady figures on a machine that another job shares (with more torch threads than free
cores, every parallel op waits for a descheduled thread).
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

TARGET_RATIO = 1.5


class TimedScoring:
    """The model, with the seconds spent in ``score_tensor`` added up."""

    def __init__(self, model) -> None:
        self.model, self.seconds = model, 0.0

    def score_tensor(self, users, items=None):
        t0 = time.perf_counter()
        out = self.model.score_tensor(users, items)
        self.seconds += time.perf_counter() - t0
        return out

    def __getattr__(self, name: str):
        return getattr(self.model, name)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="1M-rating shape (a smoke run)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    from movierec.data import load_dataset
    from movierec.data.splits import make_split
    from movierec.evaluation import evaluate_full, evaluate_sampled, protocols
    from movierec.models import build_model

    shape = U.QUICK_SHAPE if args.quick else U.FULL_SHAPE
    folder, _ = U.ensure_synthetic(shape)
    t0 = time.perf_counter()
    ds = load_dataset(folder)
    split = make_split(ds, "loo", 42)
    prep_s = time.perf_counter() - t0
    n_users, n_items = split.n_users, split.n_items
    torch.manual_seed(0)
    model = build_model("gmf", {"factors": 64})
    model.seen_ = split.train.matrix()
    model.net_ = model.build_net(n_users, n_items).eval()
    with torch.no_grad():
        for table in (model.net_.user.weight, model.net_.item.weight):
            table.normal_(0, 0.3)
    users = split.test.users.astype(np.int64)
    batches = protocols._batches(len(users), n_items, model.device)
    net = model.net_
    w = net.out.weight[0].detach()

    def matmul() -> None:
        with torch.no_grad():
            items = net.item.weight.detach()
            for b in batches:
                (net.user.weight[torch.from_numpy(users[b])] * w) @ items.T

    def score() -> None:
        for b in batches:
            model.score_tensor(users[b])

    timed = TimedScoring(model)
    full_runs: list[tuple[float, float]] = []

    def full() -> None:
        timed.seconds = 0.0
        t0 = time.perf_counter()
        evaluate_full(timed, split, "test", ks=(10,))
        full_runs.append((time.perf_counter() - t0, timed.seconds))

    figures = {}
    for name, fn in [("matmul_s", matmul), ("score_s", score), ("full_s", full),
                     ("sampled_s", lambda: evaluate_sampled(model, split, "test", ks=(10,)))]:
        fn()  # warm
        figures[name], figures[f"{name}_runs"], _ = U.median_time(fn, args.repeat)
        print(f"{name}: {figures[name]:.2f} s", flush=True)
    runs = full_runs[1:]  # the timed ones
    figures["full_over_scoring_runs"] = [round(total / scoring, 3) for total, scoring in runs]
    figures["full_scoring_s"] = sorted(scoring for _, scoring in runs)[len(runs) // 2]
    figures["full_over_matmul"] = round(figures["full_s"] / figures["matmul_s"], 3)
    ratio = sorted(figures["full_over_scoring_runs"])[len(runs) // 2]
    result = {"machine": U.machine_info(), "date_utc": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
              "shape": list(shape), "test_users": len(users), "batches": len(batches),
              "torch_threads": torch.get_num_threads(), "prep_s": round(prep_s, 1), **figures,
              "full_over_scoring": ratio, "target": TARGET_RATIO,
              "status": U.status(ratio, TARGET_RATIO, args.quick)}
    out = args.out or U.RESULTS_DIR / f"bench_full_ranking{'_quick' if args.quick else ''}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"full ranking / its scoring = {ratio:.2f} (target <= {TARGET_RATIO}; / separately timed matmuls: "
          f"{figures['full_over_matmul']:.2f}): {result['status']}  -> {out}")


if __name__ == "__main__":
    main()
