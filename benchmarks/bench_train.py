"""Training benchmarks on real ml-latest-small (CPU): throughput, time to best epoch, CLI latency, regulariser.

a) Throughput of ``movierec.training.train_network`` (as used by ``NeuMF``/``GMF``, no validation) against a
   seed-style loop: ``DataLoader(TensorDataset(users, items, labels), batch_size=2048, shuffle=True)`` over
   the SAME pre-sampled tensors (positives + 4 negatives each, drawn once with ``DeviceNegativeSampler``),
   the same network class, plain (non-fused) Adam as the seed study trained, BCE with logits. "Ours" is the
   real loop, so it uses whatever optimiser ``train_network`` builds (fused Adam on CPU/CUDA).
   Target: ours >= 5x the DataLoader loop.
b) ``NeuMF()`` with defaults (validates each epoch, early-stops): total fit seconds, best epoch, seconds of
   training + validation up to and including the best epoch, test HR/NDCG@10 under both protocols.
   Target: under 2 minutes.
c) ``movierec recommend RUN --user 1 -k 10`` on a NeuMF run folder: whole command (subprocess wall time,
   median of 5), the in-process part (``load_bundle(engine="fast")`` as the CLI does, and ``"exact"`` for
   reference, + ``model.recommend``), whether the command imports torch, and the import cost of
   ``movierec.cli``. Target: under 1 s.
d) Genre-diversity regulariser: MLP (the seed study's tower: embedding_dim=16, layers=3, 20 epochs) and
   NeuMF defaults at diversity 0 / 0.001 (the study's alpha) / 0.01 / 0.1: mean epoch training seconds
   (overhead target < 25 %) and test metrics at K=10 (full ranking: ILD, Coverage, Novelty, HR, NDCG;
   sampled-100: HR, NDCG).

    .venv/bin/python benchmarks/bench_train.py            # full size (~10 min on 2 cores)
    .venv/bin/python benchmarks/bench_train.py --quick    # fewer epochs, smoke run (~2 min)
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _util as U

TARGETS = {"speedup_min": 5.0, "neumf_to_best_s": 120.0, "recommend_cli_s": 1.0, "diversity_overhead_pct": 25.0}
SEED_BATCH = 2048
NEGATIVES = 4


def load_small():
    from movierec.data import load_dataset
    from movierec.data.splits import leave_one_out

    ds = load_dataset(U.ML_LATEST_SMALL)
    split = leave_one_out(ds.interactions, seed=42)
    return ds, split


# --------------------------------------------------------------------------------------------- a) throughput


def dataloader_loop(net_factory, users, items, labels, epochs: int, seed: int = 42) -> dict:
    """The seed study's way: DataLoader over a TensorDataset, batch 2048, shuffle; returns samples/s."""
    import torch
    import torch.nn.functional as F
    from torch.utils.data import DataLoader, TensorDataset

    torch.manual_seed(seed)
    net = net_factory()
    opt = torch.optim.Adam(net.parameters(), lr=0.001)  # plain per-tensor Adam, as the seed study
    loader = DataLoader(TensorDataset(users, items, labels), batch_size=SEED_BATCH, shuffle=True)
    net.train()
    per_epoch = []
    for _ in range(epochs):
        t0 = time.perf_counter()
        n = 0
        for u, i, y in loader:
            loss = F.binary_cross_entropy_with_logits(net(u, i), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            n += len(u)
        per_epoch.append(n / (time.perf_counter() - t0))
    return {"samples_per_s": statistics.median(per_epoch), "per_epoch": per_epoch, "epochs": epochs,
            "samples": n}


def our_loop(model_cls, kwargs: dict, train, epochs: int, batch: int) -> dict:
    """``train_network`` through the model class, no validation; samples/s from its own train log."""
    from movierec.models import RunContext

    m = model_cls(**kwargs, epochs=epochs, patience=0, batch_size=batch).fit(train, context=RunContext(device="cpu"))
    log = m.fit_report_.train_log
    per_epoch = [r["samples_per_s"] for r in log]
    return {"samples_per_s": statistics.median(per_epoch), "per_epoch": per_epoch, "epochs": epochs,
            "overall_samples_per_s": m.fit_report_.samples_per_s, "samples": log[0]["samples"]}


def bench_throughput(split, q: bool) -> list[dict]:
    import torch

    from movierec.models import GMF, NeuMF
    from movierec.models.ncf import GMFNet, NeuMFNet
    from movierec.training.negatives import DeviceNegativeSampler
    from movierec.training.pairwise import unique_positives

    train = split.train
    pu, pi = unique_positives(train)
    pos_u, pos_i = torch.from_numpy(pu), torch.from_numpy(pi)
    sampler = DeviceNegativeSampler(pos_u, pos_i, train.n_items)
    g = torch.Generator().manual_seed(42)
    neg_u = pos_u.repeat(NEGATIVES)
    users = torch.cat([pos_u, neg_u])
    items = torch.cat([pos_i, sampler.sample(neg_u, g)])
    labels = torch.cat([torch.ones(len(pos_u)), torch.zeros(len(neg_u))])
    nu, ni = train.n_users, train.n_items
    base_epochs, our_epochs = (1, 2) if q else (2, 4)
    configs = [
        ("NeuMF f32 L3 (default)", NeuMF, {"factors": 32, "layers": 3}, lambda: NeuMFNet(nu, ni, 32, 3)),
        ("NeuMF f64 L3", NeuMF, {"factors": 64, "layers": 3}, lambda: NeuMFNet(nu, ni, 64, 3)),
        ("GMF f64", GMF, {"factors": 64}, lambda: GMFNet(nu, ni, 64)),
    ]
    rows = []
    for label, cls, kw, factory in configs:
        base = dataloader_loop(factory, users, items, labels, base_epochs)
        ours = our_loop(cls, kw, train, our_epochs, 4096)
        ours_2k = our_loop(cls, kw, train, our_epochs, SEED_BATCH)
        row = {"model": label, "samples_per_epoch": len(users), "dataloader_2048": base["samples_per_s"],
               "ours_4096": ours["samples_per_s"], "ours_2048": ours_2k["samples_per_s"],
               "ratio_4096": ours["samples_per_s"] / base["samples_per_s"],
               "ratio_2048": ours_2k["samples_per_s"] / base["samples_per_s"],
               "detail": {"dataloader": base, "ours_4096": ours, "ours_2048": ours_2k}}
        row["status_4096"] = "quick" if q else ("PASS" if row["ratio_4096"] >= TARGETS["speedup_min"] else "FAIL")
        row["status_2048"] = "quick" if q else ("PASS" if row["ratio_2048"] >= TARGETS["speedup_min"] else "FAIL")
        print(f"    {label}: DataLoader {base['samples_per_s']:,.0f}/s; ours@4096 {ours['samples_per_s']:,.0f}/s "
              f"({row['ratio_4096']:.1f}x); ours@2048 {ours_2k['samples_per_s']:,.0f}/s ({row['ratio_2048']:.1f}x)",
              flush=True)
        rows.append(row)
    return rows


# --------------------------------------------------------------------------------------------- b), d) fits


class ValidationTimer:
    """Wraps ``torch_base.evaluate_heldout_sampled`` (the per-epoch validation) to time each call."""

    def __init__(self) -> None:
        import movierec.models.torch_base as tb

        self.tb, self.orig, self.times = tb, tb.evaluate_heldout_sampled, []

    def __enter__(self) -> ValidationTimer:
        def timed(*a, **k):
            t0 = time.perf_counter()
            out = self.orig(*a, **k)
            self.times.append(time.perf_counter() - t0)
            return out

        self.tb.evaluate_heldout_sampled = timed
        return self

    def __exit__(self, *a) -> None:
        self.tb.evaluate_heldout_sampled = self.orig


def timed_fit(model, ds, split) -> dict:
    """Fit with validation; per-epoch end timestamps (via on_epoch_end) and validation seconds."""
    stamps: list[float] = []

    def on_epoch_end(record: dict) -> None:  # called after the epoch's validation
        stamps.append(time.perf_counter())

    from movierec.models import RunContext

    with ValidationTimer() as vt:
        t0 = time.perf_counter()
        model.fit(split.train, ds.catalog, split.valid, RunContext(on_epoch_end=on_epoch_end))
        fit_s = time.perf_counter() - t0
    report = model.fit_report_
    log = report.train_log
    best = report.best_epoch
    out = {"fit_s": fit_s, "best_epoch": best, "epochs_run": report.epochs,
           "stopped_early": report.stopped_early,
           "train_s_total": sum(r["seconds"] for r in log), "valid_s_total": sum(vt.times),
           "train_s_to_best": sum(r["seconds"] for r in log[:best]), "valid_s_to_best": sum(vt.times[:best]),
           "wall_to_best_s": (stamps[best - 1] - t0) if len(stamps) >= best > 0 else None,
           "mean_epoch_train_s": statistics.mean(r["seconds"] for r in log),
           "median_epoch_train_s": statistics.median(r["seconds"] for r in log),
           "best_valid": report.best_valid,
           "log": [{k: v for k, v in r.items()} for r in log]}
    out["train_valid_to_best_s"] = out["train_s_to_best"] + out["valid_s_to_best"]
    return out


def test_metrics(model, split, feats) -> dict:
    from movierec.evaluation import evaluate

    s = evaluate(model, split, "sampled-100", "test", (10,)).metrics
    f = evaluate(model, split, "full", "test", (10,), item_features=feats).metrics
    return {"sampled": {k: v for k, v in s.items() if k.endswith("@10")},
            "full": {k: v for k, v in f.items() if k.endswith("@10")}}


def bench_neumf_best(ds, split, q: bool) -> dict:
    from movierec.models import NeuMF

    model = NeuMF(epochs=3) if q else NeuMF()
    out = timed_fit(model, ds, split)
    out["test"] = test_metrics(model, split, ds.genre_features())
    out["status"] = U.status(out["train_valid_to_best_s"], TARGETS["neumf_to_best_s"], q)
    t = out["test"]
    print(f"    NeuMF(): fit {out['fit_s']:.1f} s, best epoch {out['best_epoch']}/{out['epochs_run']}, "
          f"train+valid to best {out['train_valid_to_best_s']:.1f} s; test HR@10 {t['sampled']['HR@10']:.3f} / "
          f"NDCG@10 {t['sampled']['NDCG@10']:.3f} (sampled-100), {t['full']['HR@10']:.3f} / "
          f"{t['full']['NDCG@10']:.3f} (full)", flush=True)
    return out


def bench_diversity(ds, split, q: bool) -> list[dict]:
    from movierec.models import MLP, NeuMF

    feats = ds.genre_features()
    alphas = (0.0, 0.001) if q else (0.0, 0.001, 0.01, 0.1)
    makers = [("MLP e16 L3", lambda a: MLP(embedding_dim=16, layers=3, epochs=3 if q else 20, patience=0, seed=42,
                                         diversity=a)),
              ("NeuMF defaults", lambda a: NeuMF(diversity=a, **({"epochs": 3} if q else {})))]
    rows = []
    for label, make in makers:
        base_epoch = None
        for a in alphas:
            model = make(a)
            fit = timed_fit(model, ds, split)
            met = test_metrics(model, split, feats)
            if a == 0.0:
                base_epoch = fit["mean_epoch_train_s"]
            over = 100.0 * (fit["mean_epoch_train_s"] / base_epoch - 1.0)
            f, s = met["full"], met["sampled"]
            row = {"model": label, "diversity": a, "epochs": fit["epochs_run"], "best_epoch": fit["best_epoch"],
                   "epoch_s": fit["mean_epoch_train_s"], "overhead_pct": over if a > 0 else None,
                   "ILD@10": f.get("ILD@10"), "Coverage@10": f.get("Coverage@10"), "Novelty@10": f.get("Novelty@10"),
                   "HR@10_full": f.get("HR@10"), "NDCG@10_full": f.get("NDCG@10"),
                   "HR@10_s100": s.get("HR@10"), "NDCG@10_s100": s.get("NDCG@10"),
                   "status": U.status(over, TARGETS["diversity_overhead_pct"], q) if a > 0 else "",
                   "detail": {"fit": fit, "test": met}}
            print(f"    {label} diversity={a}: epoch {row['epoch_s']:.2f} s"
                  + (f" (+{over:.1f}%)" if a > 0 else "")
                  + f", ILD@10 {row['ILD@10']:.3f}, Cov@10 {row['Coverage@10']:.3f}, "
                  f"HR@10 full {row['HR@10_full']:.3f}, s100 {row['HR@10_s100']:.3f}", flush=True)
            rows.append(row)
    return rows


# --------------------------------------------------------------------------------------------- c) recommend


def _cli(*args: str) -> list[str]:
    exe = Path(sys.executable).with_name("movierec")
    return [str(exe), *args] if exe.exists() else [sys.executable, "-m", "movierec.cli", *args]


def _wall(cmd: list[str], env: dict) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    return time.perf_counter() - t0


def bench_recommend(q: bool, tmp: Path, repeat: int = 5) -> dict:
    env = {**os.environ}
    run = tmp / "neumf-run"
    train_cmd = _cli("train", "neumf", "--data", str(U.ML_LATEST_SMALL), "--out", str(run))
    if q:
        train_cmd += ["--set", "epochs=2"]
    t0 = time.perf_counter()
    subprocess.run(train_cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    out: dict = {"train_cli_s": time.perf_counter() - t0}
    rec = _cli("recommend", str(run), "--user", "1", "-k", "10")
    _wall(rec, env)  # warm the page cache
    times = [_wall(rec, env) for _ in range(repeat)]
    out.update(cli_s=statistics.median(times), cli_times=times)
    py = sys.executable
    out["python_bare_s"] = statistics.median(_wall([py, "-c", "pass"], env) for _ in range(repeat))
    out["import_cli_s"] = statistics.median(_wall([py, "-c", "import movierec.cli"], env) for _ in range(repeat))
    out["import_cli_artifacts_s"] = statistics.median(
        _wall([py, "-c", "import movierec.cli, movierec.artifacts"], env) for _ in range(repeat))
    # -X importtime of the recommend command itself: first import of each root package (cumulative s)
    p = subprocess.run([py, "-X", "importtime", *rec[1:]] if rec[0] == py else [py, "-X", "importtime", *rec],
                       capture_output=True, text=True, env=env)
    top = []
    for line in p.stderr.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        _, cum_us, name = line[len("import time:"):].split("|")
        if "." not in name.strip() and int(cum_us) >= 20_000:
            top.append((name.strip(), int(cum_us) / 1e6))
    out["importtime_top"] = sorted(top, key=lambda x: -x[1])[:10]
    # in-process: load_bundle + recommend (imports already done)
    from movierec.artifacts import load_bundle

    def in_process(engine: str):
        t0 = time.perf_counter()
        b = load_bundle(run, engine=engine)
        t1 = time.perf_counter()
        b.model.recommend(b.users.index(1), 10)
        return t1 - t0, time.perf_counter() - t1

    out["command_imports_torch"] = any(
        line.startswith("import time:") and line.split("|")[-1].strip() == "torch" for line in p.stderr.splitlines())
    for engine, suffix in (("fast", ""), ("exact", "_exact")):
        in_process(engine)
        parts = [in_process(engine) for _ in range(repeat)]
        out["load_bundle" + suffix + "_s"] = statistics.median(p[0] for p in parts)
        out["recommend" + suffix + "_s"] = statistics.median(p[1] for p in parts)
        out["in_process" + suffix + "_s"] = statistics.median(p[0] + p[1] for p in parts)
    out["status"] = U.status(out["cli_s"], TARGETS["recommend_cli_s"], q)
    print(f"    recommend CLI {out['cli_s']:.2f} s (bare python {out['python_bare_s']:.2f} s, import movierec.cli "
          f"{out['import_cli_s']:.2f} s, + artifacts {out['import_cli_artifacts_s']:.2f} s); in-process "
          f"load_bundle {out['load_bundle_s'] * 1e3:.0f} ms + recommend {out['recommend_s'] * 1e3:.1f} ms (fast); "
          f"exact {out['load_bundle_exact_s'] * 1e3:.0f} + {out['recommend_exact_s'] * 1e3:.1f} ms; "
          f"imports torch: {out['command_imports_torch']}", flush=True)
    return out


# --------------------------------------------------------------------------------------------- main


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="fewer epochs and regulariser weights (smoke run)")
    ap.add_argument("--only", default="abcd", help="parts to run, e.g. 'ab' (default: abcd)")
    ap.add_argument("--out", type=Path, default=None, help="JSON output (default benchmarks/results/...)")
    args = ap.parse_args()
    q = args.quick
    cache = Path(tempfile.mkdtemp(prefix="movierec-bench-cache-"))
    tmp = Path(tempfile.mkdtemp(prefix="movierec-bench-train-"))
    os.environ["MOVIEREC_CACHE_DIR"] = str(cache)
    import torch

    results: dict = {"date": U.stamp(), "machine": U.machine_info(), "quick": q, "targets": TARGETS,
                     "torch_threads": torch.get_num_threads(), "data": str(U.ML_LATEST_SMALL)}
    try:
        ds, split = load_small()
        results["dataset"] = {"ratings": len(ds.interactions), "users": ds.n_users, "items": ds.n_items,
                              "train_rows": len(split.train.user)}
        parts = {
            "a": ("throughput", "throughput", lambda: bench_throughput(split, q)),
            "b": ("neumf_best", "NeuMF defaults to best epoch", lambda: bench_neumf_best(ds, split, q)),
            "c": ("recommend", "recommend latency", lambda: bench_recommend(q, tmp)),
            "d": ("diversity", "diversity regulariser", lambda: bench_diversity(ds, split, q)),
        }
        for part, (key, what, run) in parts.items():
            if part in args.only:
                print(f"[{U.stamp()}] {part}) {what} ...", flush=True)
                results[key] = run()
                results[f"{key}_date"] = U.stamp()
    finally:
        shutil.rmtree(cache, ignore_errors=True)
        shutil.rmtree(tmp, ignore_errors=True)
    results["peak_rss_gb"] = U.peak_rss_gb()

    print()
    if "throughput" in results:
        print("a) training throughput, samples/s (median epoch; DataLoader loop: batch 2048, same pre-sampled data)")
        U.print_table(results["throughput"], [
            ("model", "model"), ("dataloader_2048", "DataLoader@2048"), ("ours_4096", "ours@4096"),
            ("ratio_4096", "x"), ("status_4096", "status"), ("ours_2048", "ours@2048"), ("ratio_2048", "x"),
            ("status_2048", "status")])
        print()
    if "neumf_best" in results:
        b = results["neumf_best"]
        t = b["test"]
        print("b) NeuMF() defaults on ml-latest-small")
        U.print_table([
            {"what": "fit, total (s)", "value": b["fit_s"]},
            {"what": "best epoch / epochs run", "value": f"{b['best_epoch']} / {b['epochs_run']}"},
            {"what": "train + valid up to best epoch (s)", "value": b["train_valid_to_best_s"],
             "target": TARGETS["neumf_to_best_s"], "status": b["status"]},
            {"what": "... training / validation (s)",
             "value": f"{b['train_s_to_best']:.2f} / {b['valid_s_to_best']:.2f}"},
            {"what": "wall from fit() start to end of best epoch (s)", "value": b["wall_to_best_s"]},
            {"what": "test HR@10 / NDCG@10 sampled-100",
             "value": f"{t['sampled']['HR@10']:.3f} / {t['sampled']['NDCG@10']:.3f}"},
            {"what": "test HR@10 / NDCG@10 full", "value": f"{t['full']['HR@10']:.3f} / {t['full']['NDCG@10']:.3f}"},
        ], [("what", "measure"), ("value", "value"), ("target", "target"), ("status", "status")])
        print()
    if "recommend" in results:
        r = results["recommend"]
        print("c) movierec recommend RUN --user 1 -k 10 (NeuMF run), seconds, median of 5")
        U.print_table([
            {"what": "whole command (subprocess wall)", "value": r["cli_s"], "target": TARGETS["recommend_cli_s"],
             "status": r["status"]},
            {"what": "python -c pass", "value": r["python_bare_s"]},
            {"what": "python -c 'import movierec.cli'", "value": r["import_cli_s"]},
            {"what": "python -c 'import movierec.cli, movierec.artifacts'", "value": r["import_cli_artifacts_s"]},
            {"what": "in-process load_bundle(engine='fast')", "value": r["load_bundle_s"]},
            {"what": "in-process model.recommend (fast)", "value": r["recommend_s"]},
            {"what": "in-process load_bundle(engine='exact')", "value": r["load_bundle_exact_s"]},
            {"what": "in-process model.recommend (exact)", "value": r["recommend_exact_s"]},
            {"what": "command imports torch", "value": str(r["command_imports_torch"])},
        ], [("what", "measure"), ("value", "value"), ("target", "target"), ("status", "status")])
        print("   heaviest first imports in the command (cumulative s, nested ones overlap):",
              ", ".join(f"{n} {s:.2f}" for n, s in r["importtime_top"]))
        print()
    if "diversity" in results:
        print("d) genre-diversity regulariser (test, K=10; ILD/Coverage/Novelty/HR/NDCG full ranking; s100 = sampled)")
        U.print_table(results["diversity"], [
            ("model", "model"), ("diversity", "alpha"), ("epochs", "epochs"), ("epoch_s", "epoch s"),
            ("overhead_pct", "overhead %"), ("status", "status"), ("ILD@10", "ILD"), ("Coverage@10", "Cov"),
            ("Novelty@10", "Novelty"), ("HR@10_full", "HR full"), ("NDCG@10_full", "NDCG full"),
            ("HR@10_s100", "HR s100"), ("NDCG@10_s100", "NDCG s100")])
    name = f"bench_train{'_quick' if q else ''}.json"
    target = args.out or U.RESULTS_DIR / name
    if args.only != "abcd" and target.exists():
        # a partial run (--only) updates its parts and keeps the others' figures, each with its own date
        results = {**json.loads(target.read_text()), **results}
    path = U.write_json(name, results, args.out)
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
