"""One training loop for every torch model: implicit feedback, sampled negatives, log loss.

Per epoch: the positive (user, item) pairs (resident on the device) get ``negatives`` fresh negatives each,
drawn on the device; the samples are shuffled with a seeded device generator and cut into batches by
slicing (no DataLoader). Loss = binary cross-entropy on logits + ``l2`` x mean squared norm of the batch's
embeddings (+ the genre-diversity regulariser when enabled). Adam. After each epoch the validation items
are ranked (sampled-100); the best epoch by NDCG@10 is kept, training stops after ``patience`` epochs
without improvement, and a checkpoint is written atomically so ``resume`` continues to the same result.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
import torch.nn.functional as F

from movierec.data.dataset import Interactions
from movierec.data.sampling import positive_keys
from movierec.training.checkpoint import load_checkpoint, save_checkpoint
from movierec.training.config import TrainConfig
from movierec.training.negatives import DeviceNegativeSampler
from movierec.training.regularizers import GenreDiversityRegularizer


class TrainableNet(Protocol):
    """What the loop needs from a network (see movierec.models.ncf)."""

    def forward(self, user: torch.Tensor, item: torch.Tensor) -> torch.Tensor: ...  # logits [B]

    def embedding_l2(self, user: torch.Tensor, item: torch.Tensor) -> torch.Tensor: ...  # [B]

    def score_pairs(self, user: torch.Tensor, items: torch.Tensor) -> torch.Tensor: ...  # [B, m]


@dataclass
class TrainResult:
    best_epoch: int
    best_valid: dict[str, float]
    epochs_run: int
    train_seconds: float  # time in training steps (validation excluded)
    samples_per_second: float
    log: list[dict[str, Any]] = field(default_factory=list)
    stopped_early: bool = False


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        from movierec.errors import MovieRecError

        raise MovieRecError(f"device {name!r} requested but CUDA is not available")
    return dev


def effective_batch_and_lr(cfg: TrainConfig, device: torch.device) -> tuple[int, float]:
    """Large batches with square-root learning-rate scaling on GPU; the configured values on CPU."""
    if device.type == "cuda" and cfg.gpu_batch_factor > 1:
        return cfg.batch_size * cfg.gpu_batch_factor, cfg.lr * math.sqrt(cfg.gpu_batch_factor)
    return cfg.batch_size, cfg.lr


def unique_positives(train: Interactions) -> tuple[np.ndarray, np.ndarray]:
    keys = positive_keys(train.user, train.item, train.n_items)
    return (keys // train.n_items).astype(np.int64), (keys % train.n_items).astype(np.int64)


def train_network(
    net: torch.nn.Module,
    train: Interactions,
    cfg: TrainConfig,
    validate: Callable[[], dict[str, float]] | None = None,
    genres: np.ndarray | None = None,
    checkpoint_dir: Path | None = None,
    resume: bool = False,
    progress: Any = False,
    on_epoch_end: Callable[[dict[str, Any]], bool] | None = None,
) -> TrainResult:
    """Train ``net`` in place (it ends holding the best epoch's weights) and return the run's record.

    ``validate()`` returns validation metrics (it must contain "NDCG@10"); ``on_epoch_end(record)`` may
    return False to stop (used to simulate interruptions in tests).
    """
    device = next(net.parameters()).device
    batch_size, lr = effective_batch_and_lr(cfg, device)
    pos_u_np, pos_i_np = unique_positives(train)
    pos_u = torch.from_numpy(pos_u_np).to(device)
    pos_i = torch.from_numpy(pos_i_np).to(device)
    sampler = DeviceNegativeSampler(pos_u, pos_i, train.n_items)
    n_pos = len(pos_u)
    neg_u = pos_u.repeat(cfg.negatives)
    all_u = torch.cat([pos_u, neg_u])
    labels = torch.cat([torch.ones(n_pos, device=device), torch.zeros(len(neg_u), device=device)])

    reg = None
    every = max(cfg.diversity_every, 1)
    if cfg.diversity > 0:
        if genres is None:
            from movierec.errors import MovieRecError

            raise MovieRecError("diversity > 0 needs item genres (a dataset with a movie catalogue)")
        reg = GenreDiversityRegularizer(torch.as_tensor(genres, dtype=torch.float32, device=device),
                                        cfg.diversity_temperature)

    # fused Adam: one kernel over all parameters; the embedding tables' dense update dominates a step otherwise
    opt = torch.optim.Adam(net.parameters(), lr=lr, fused=device.type in ("cpu", "cuda"))
    generator = torch.Generator(device=device)
    generator.manual_seed(cfg.seed)
    step_fn = torch.compile(net) if cfg.compile else net
    use_amp = cfg.amp and device.type == "cuda"

    log: list[dict[str, Any]] = []
    start_epoch, best_epoch, best_metric, bad_epochs = 1, 0, -math.inf, 0
    best_state: dict[str, torch.Tensor] | None = None
    best_valid: dict[str, float] = {}
    data_shape = [train.n_users, train.n_items, n_pos]
    if resume and checkpoint_dir is not None and (checkpoint_dir / "state.json").exists():
        _check_resumable(checkpoint_dir, asdict(cfg), data_shape)
        meta, best_state = load_checkpoint(checkpoint_dir, net, opt, generator)
        start_epoch = meta["epoch"] + 1
        best_epoch, best_metric, bad_epochs = meta["best_epoch"], meta["best_metric"], meta["bad_epochs"]
        best_valid, log = meta["best_valid"], meta["log"]
        if meta.get("finished"):
            start_epoch = cfg.epochs + 1

    bar = _Progress(progress, cfg.epochs, start_epoch - 1)
    train_seconds = sum(r.get("seconds", 0.0) for r in log)
    samples_done = sum(r.get("samples", 0) for r in log)
    stopped_early = False
    epoch = start_epoch - 1
    for epoch in range(start_epoch, cfg.epochs + 1):
        net.train()
        t0 = time.perf_counter()
        all_i = torch.cat([pos_i, sampler.sample(neg_u, generator)])
        perm = torch.randperm(len(all_u), generator=generator, device=device)
        total_loss = torch.zeros((), device=device)
        n_batches = 0
        for start in range(0, len(perm), batch_size):
            idx = perm[start: start + batch_size]
            u, i, y = all_u[idx], all_i[idx], labels[idx]
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
                logits = step_fn(u, i)
                loss = F.binary_cross_entropy_with_logits(logits.float(), y)
                if cfg.l2 > 0:
                    loss = loss + cfg.l2 * net.embedding_l2(u, i).mean()
                if reg is not None and n_batches % every == 0:
                    # applied every `diversity_every` steps with its weight scaled to match: the penalty's
                    # small fixed-cost kernels would otherwise add a quarter to a small model's step
                    loss = loss + cfg.diversity * every * _diversity_term(net, reg, cfg, u, i, logits,
                                                                          train.n_items, generator)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total_loss += loss.detach()
            n_batches += 1
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        seconds = time.perf_counter() - t0
        train_seconds += seconds
        samples_done += len(perm)
        record: dict[str, Any] = {"epoch": epoch, "loss": float(total_loss) / max(n_batches, 1),
                                  "seconds": seconds, "samples": len(perm), "samples_per_s": len(perm) / seconds}
        if validate is not None:
            net.eval()
            record.update({f"valid_{k}": v for k, v in validate().items()})
            metric = record["valid_NDCG@10"]
            if metric > best_metric:
                best_metric, best_epoch, bad_epochs = metric, epoch, 0
                best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
                best_valid = {k[6:]: v for k, v in record.items() if k.startswith("valid_")}
            else:
                bad_epochs += 1
        else:
            best_epoch, best_state = epoch, None
        log.append(record)
        bar.update(record)
        stop = cfg.patience > 0 and bad_epochs >= cfg.patience
        if checkpoint_dir is not None:
            meta = {"epoch": epoch, "best_epoch": best_epoch, "best_metric": best_metric, "bad_epochs": bad_epochs,
                    "best_valid": best_valid, "log": log, "finished": stop, "config": asdict(cfg),
                    "data": data_shape}
            save_checkpoint(checkpoint_dir, net, best_state, opt, generator, meta)
        if stop:
            stopped_early = True
            break
        if on_epoch_end is not None and on_epoch_end(record) is False:
            break
    bar.close()
    if best_state is not None:
        net.load_state_dict(best_state)
    net.eval()
    return TrainResult(best_epoch, best_valid, epoch, train_seconds, samples_done / max(train_seconds, 1e-9), log,
                       stopped_early)


def _diversity_term(net, reg: GenreDiversityRegularizer, cfg: TrainConfig, u: torch.Tensor, i: torch.Tensor,
                    logits: torch.Tensor, n_items: int, generator: torch.Generator) -> torch.Tensor:
    """The study's batch-scope penalty plus the per-user penalty over one shared random pool of items."""
    term = reg.batch_penalty(logits, i)
    if cfg.diversity_users > 0:
        users = u[: cfg.diversity_users]
        pool = torch.randint(0, n_items, (cfg.diversity_pool,), generator=generator, device=u.device)
        logits_pool = net.score_pairs(users, pool)  # one shared pool: each item is projected once
        term = term + reg.penalty(logits_pool, pool.unsqueeze(0).expand(len(users), -1))
    return term


def _check_resumable(checkpoint_dir: Path, config: dict[str, Any], data_shape: list[int]) -> None:
    """Refuse to resume a checkpoint written for other settings or other training data (one-line error)."""
    import json

    from movierec.errors import MovieRecError

    saved = json.loads((checkpoint_dir / "state.json").read_text())
    old = saved.get("config", {})
    changed = sorted(k for k in set(old) | set(config) if old.get(k) != config.get(k))
    if changed:
        k = changed[0]
        raise MovieRecError(f"{checkpoint_dir}: the checkpoint was trained with {k}={old.get(k)!r}, not "
                            f"{config.get(k)!r}; remove the folder or train without --resume")
    if saved.get("data", data_shape) != data_shape:
        raise MovieRecError(f"{checkpoint_dir}: the checkpoint was trained on other data (users, items, positives "
                            f"{saved['data']} vs {data_shape}); remove the folder or train without --resume")


class _Progress:
    """A rich progress bar over epochs showing loss and validation HR/NDCG. ``enabled``: False (no-op), True (a
    bar of its own) or a running ``rich.progress.Progress`` to add the bar to (e.g. under a study's overall bar,
    since rich shows one live display at a time); the bar is removed from it when training ends."""

    def __init__(self, enabled: Any, total: int, done: int) -> None:
        self.p = None
        self.own = False
        if hasattr(enabled, "add_task"):
            self.p = enabled
            self.task = self.p.add_task("  epochs", total=total, completed=done)
        elif enabled:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self.p = Progress(TextColumn("epoch"), MofNCompleteColumn(), BarColumn(), TimeElapsedColumn(),
                              TextColumn("{task.description}"), transient=False)
            self.p.start()
            self.own = True
            self.task = self.p.add_task("", total=total, completed=done)

    def update(self, r: dict[str, Any]) -> None:
        if self.p is None:
            return
        desc = f"loss {r['loss']:.4f}  {r['samples_per_s'] / 1e6:.2f}M samples/s"
        if "valid_HR@10" in r:
            desc += f"  valid HR@10 {r['valid_HR@10']:.4f} NDCG@10 {r['valid_NDCG@10']:.4f}"
        self.p.update(self.task, advance=1, description=desc if self.own else f"  epoch {r['epoch']}: {desc}")

    def close(self) -> None:
        if self.own:
            self.p.stop()
        elif self.p is not None:
            self.p.remove_task(self.task)
