"""The fused full cross-entropy (:func:`movierec.models.sequential.full_cross_entropy`) against the plain path
(``F.cross_entropy(h @ table.T, tgt)`` through autograd), forward + backward, at the shape of one SASRec step on
ml-latest-small: 16 windows x 100 positions against 9,742 items, 64 wide (and a few others). The two give the
same loss and gradients (tests/models/test_sequential.py); this measures their time on this CPU.

    python benchmarks/bench_cross_entropy.py [--repeat 30]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _util as U
import torch
from torch.nn import functional as F

from movierec.models.sequential import full_cross_entropy

SHAPES = [(1600, 9742, 64), (6400, 9742, 64), (1600, 26744, 64)]  # (positions, items, dim)


def _time(fn, repeat: int) -> float:
    for _ in range(3):
        fn()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=30)
    ap.add_argument("--out", default=str(U.RESULTS_DIR / "bench_cross_entropy.json"))
    args = ap.parse_args()
    rows = []
    for n, items, dim in SHAPES:
        gen = torch.Generator().manual_seed(0)
        h = torch.randn(n, dim, generator=gen, requires_grad=True)
        table = (torch.randn(items, dim, generator=gen) * 0.1).requires_grad_()
        tgt = torch.randint(0, items, (n,), generator=gen)

        def plain(h=h, table=table, tgt=tgt) -> None:
            h.grad = table.grad = None
            F.cross_entropy(h @ table.T, tgt).backward()

        def fused(h=h, table=table, tgt=tgt) -> None:
            h.grad = table.grad = None
            full_cross_entropy(h, table, tgt).backward()

        t_plain, t_fused = _time(plain, args.repeat), _time(fused, args.repeat)
        rows.append({"positions": n, "items": items, "dim": dim, "plain_ms": round(t_plain * 1e3, 2),
                     "fused_ms": round(t_fused * 1e3, 2), "speedup": round(t_plain / t_fused, 2)})
        print(json.dumps(rows[-1]), flush=True)
    Path(args.out).write_text(json.dumps({"machine": U.machine_info(), "date": time.strftime("%Y-%m-%d %H:%M UTC"),
                                          "threads": torch.get_num_threads(), "repeat": args.repeat,
                                          "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
