"""SASRec and GRU4Rec at ml-20m's shape on this CPU with one thread: seconds per training step, the epoch time
those steps imply, and peak memory, with the sampled softmax over the 26,744 items.

The sequences are synthetic, of ml-20m's shape: 138,493 users whose history lengths follow the Pareto-shaped
counts of ``movierec data synth`` (20,000,263 ratings in all), items drawn from a Zipf-like popularity over
26,744 movies. A step's cost depends on the batch's positions and the catalogue, not on which items they are.
Settings are ``configs/study-20m.toml``'s for SASRec (batches of 128 windows of up to 100 items, lr 0.001) and
the same batches for GRU4Rec; the loss is ``sampled`` with 4,096 shared negatives (``--loss ce``: the full
cross-entropy over every item, for comparison; rows of other losses already in ``--out`` are kept). One epoch
at this size is
hours on one CPU thread, so a run times ``--steps`` steps after ``--warmup`` untimed ones and reports the epoch
time as steps per epoch x the median step (an extrapolation from measured steps, said so in the output).
Each model runs in its own process so that peak memory (VmHWM) is its own.

    python benchmarks/bench_sequential_scale.py [--steps 20] [--models sasrec,gru4rec] [--loss sampled]
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

N_USERS, N_ITEMS, N_RATINGS = U.FULL_SHAPE
SETTINGS = {"batch_size": 128, "lr": 0.001, "max_len": 100, "loss": "sampled", "sampled_items": 4096}


def _sequences(seed: int = 0) -> list:
    import numpy as np

    from movierec.data.synthetic import _user_counts

    rng = np.random.default_rng(seed)
    counts = _user_counts(rng, N_USERS, N_ITEMS, N_RATINGS)
    popularity = 1.0 / np.arange(1, N_ITEMS + 1) ** 0.8
    items = rng.choice(N_ITEMS, size=int(counts.sum()), p=popularity / popularity.sum()).astype(np.int64)
    return np.split(items, np.cumsum(counts)[:-1])


def phase_model(args: list[str]) -> dict:
    import torch

    from movierec.models import build_model
    from movierec.models.sequential import NextItemStep

    name, steps, warmup = args[0], int(args[1]), int(args[2])
    settings = {**SETTINGS, "loss": args[3]}
    torch.set_num_threads(1)
    torch.manual_seed(0)
    t0 = time.perf_counter()
    seqs = _sequences()
    data_s = time.perf_counter() - t0
    model = build_model(name, settings)
    net = model._build_net(N_ITEMS)
    step = NextItemStep(seqs, N_ITEMS, model.config.step, torch.device("cpu"))
    del seqs
    gen = torch.Generator().manual_seed(0)
    t0 = time.perf_counter()
    batches = step.batches(gen, SETTINGS["batch_size"], 0, 1)
    first = next(batches)
    windows_s = time.perf_counter() - t0
    n_windows = len(step.windows(torch.Generator().manual_seed(0))[0])
    steps_per_epoch = -(-n_windows // SETTINGS["batch_size"])
    opt = torch.optim.Adam(net.parameters(), lr=SETTINGS["lr"])
    net.train()
    times = []
    batch = first
    for i in range(warmup + steps):
        t = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss = step.loss(net, batch, i, gen)
        loss.backward()
        opt.step()
        if i >= warmup:
            times.append(time.perf_counter() - t)
        batch = next(batches)
    per_step = statistics.median(times)
    return {"model": name, "threads": torch.get_num_threads(), "users": len(step.seqs), "items": N_ITEMS,
            "transitions": step.samples_per_epoch(), "windows": n_windows, "steps_per_epoch": steps_per_epoch,
            "timed_steps": steps, "step_s_median": round(per_step, 4), "step_s_all": [round(x, 4) for x in times],
            "epoch_s_extrapolated": round(per_step * steps_per_epoch, 1), "data_s": round(data_s, 1),
            "first_windows_s": round(windows_s, 1), "loss_value": float(loss), "settings": settings,
            "parameters": sum(p.numel() for p in net.parameters())}


def main() -> None:
    if "--child" in sys.argv:
        U.child_main({"model": phase_model})
        return
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default="sasrec,gru4rec")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--loss", default="sampled", choices=["sampled", "ce", "gbce", "bce"])
    ap.add_argument("--out", default=str(U.RESULTS_DIR / "bench_sequential_scale.json"))
    args = ap.parse_args()
    out = Path(args.out)
    rows = [r for r in (json.loads(out.read_text())["rows"] if out.exists() else [])
            if r["settings"]["loss"] != args.loss]
    for name in args.models.split(","):
        row = U.run_child(Path(__file__), ["--child", "model", name, str(args.steps), str(args.warmup), args.loss],
                          timeout=3600)
        rows = [r for r in rows if r["model"] != name or r["settings"]["loss"] != args.loss] + [row]
        print(f"{name} ({args.loss}): {row['step_s_median']:.3f} s/step x {row['steps_per_epoch']:,} steps = "
              f"{row['epoch_s_extrapolated'] / 60:.1f} min/epoch (extrapolated from {row['timed_steps']} timed "
              f"steps, one thread); peak RSS {row['peak_rss_gb']:.2f} GB", flush=True)
    out.write_text(json.dumps({"machine": U.machine_info(), "date": time.strftime("%Y-%m-%d"),
                                          "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
