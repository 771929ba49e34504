"""Run under torchrun by tests/training/test_distributed.py (not a test module itself).

``ddp_script.py stop DATA OUT SETTINGS_JSON N``: train NeuMF as ``movierec train neumf --data DATA --out OUT``
would, with the settings of SETTINGS_JSON, and stop after epoch N (as an interruption would), leaving
OUT.ckpt for ``--resume``.
``ddp_script.py models DATA``: one epoch of every trainer-shell model, data-parallel, on DATA; rank 0 prints a
JSON line {model: validation NDCG@10}.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch.distributed as dist

from movierec.data import load_dataset
from movierec.data.splits import make_split
from movierec.fitting import fit_model
from movierec.models.base import RunContext
from movierec.training import distributed


def main() -> None:
    what, data = sys.argv[1], sys.argv[2]
    rank, world, device = distributed.setup("cpu")
    ds = load_dataset(data)
    split = make_split(ds, "loo", 42)
    if what == "stop":
        out, settings, stop_after = Path(sys.argv[3]), json.loads(sys.argv[4]), int(sys.argv[5])
        ctx = RunContext(device=device, checkpoint_dir=Path(f"{out}.ckpt"), rank=rank, world_size=world,
                         on_epoch_end=lambda r: r["epoch"] < stop_after)
        _, report = fit_model("neumf", settings, split, ds.catalog, ctx)
        assert len(report.train_log) == stop_after
    else:
        found = {}
        for name, settings in [("gmf", {"factors": 8}), ("mlp", {"embedding_dim": 8}),
                               ("mlp", {"embedding_dim": 8, "diversity": 0.001}),
                               ("neumf", {"factors": 4, "pretrain": True}), ("content-neural", {}),
                               ("multvae", {}), ("sasrec", {"max_len": 20}), ("gru4rec", {"max_len": 20})]:
            ctx = RunContext(device=device, rank=rank, world_size=world)
            _, report = fit_model(name, {**settings, "epochs": 1}, split, ds.catalog, ctx)
            found[f"{name} {settings}"] = report.best_valid.get("NDCG@10")
        if rank == 0:
            print(json.dumps(found))
    dist.barrier()
    distributed.teardown()


if __name__ == "__main__":
    main()
