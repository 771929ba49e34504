"""The trainer shell: what every iterative torch model shares, with the model's own step plugged in.

The shell owns the epoch loop, the optimiser (:mod:`movierec.training.optim`: fused Adam, row-wise Adam on
the embedding tables on a CPU), the seeded device generator, validation after each epoch with model
selection (the best epoch by validation NDCG@10 is kept) and early stopping after ``patience`` epochs without
improvement, atomic per-epoch checkpoints and ``resume``, the progress bar and a time budget.

Data-parallel runs (``RunContext.world_size > 1``, under torchrun; :mod:`movierec.training.distributed`):
every rank holds the whole training data and the same seeded generator, so all ranks draw the same epoch
(negatives and order) and each trains on its own 1/world_size of it, with batch_size / world_size samples
per step, so one step of N ranks is one step of one process at the same batch. Gradients are all-reduced by
``DistributedDataParallel`` around a module that computes the step's loss. Rank 0 alone validates, writes
checkpoints and shows progress, and tells the others when to stop. Since the generator is the same on every
rank, a checkpoint resumes with any number of ranks.

A model supplies a :class:`TrainingStep`: its device-resident data, its batches for one epoch and its loss.
NCF's pairwise negatives are one step (:mod:`movierec.training.pairwise`); a user-row model with a softmax
loss is another (see the tests). Closed-form models do not use the shell.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, ClassVar, Protocol

import torch

from movierec.models.base import FitReport, RunContext
from movierec.training.checkpoint import load_checkpoint, save_checkpoint
from movierec.training.config import Hardware, TrainerSettings
from movierec.training.optim import TrainerOptimizer


class TrainingStep(Protocol):
    """One model's part of training. Batches are whatever its ``loss`` takes; ``len(batch)`` is not used."""

    def samples_per_epoch(self) -> int:
        """Training samples in one epoch (for samples/s)."""

    def signature(self) -> list[int]:
        """Sizes of the training data (users, items, samples...): a checkpoint of other data is refused."""

    def batches(self, generator: torch.Generator, batch_size: int, rank: int, world_size: int) -> Iterator[Any]:
        """One epoch's batches, drawn with ``generator`` (this rank's share when world_size > 1: cut the epoch's
        order with :func:`movierec.training.sharding.shard`, so every rank gets as many batches)."""

    def loss(self, net: torch.nn.Module, batch: Any, step: int, generator: torch.Generator) -> torch.Tensor:
        """The scalar loss of one batch; ``step`` counts batches within the epoch from 0."""


def resolve_device(name: str) -> torch.device:
    from movierec.errors import MovieRecError

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise MovieRecError(f"device {name!r}: expected auto, cpu, cuda, cuda:N (N: a GPU number) or mps") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise MovieRecError(f"device {name!r} requested but CUDA is not available")
    return dev


def effective_batch_and_lr(cfg: TrainerSettings, device: torch.device, hardware: Hardware) -> tuple[int, float]:
    """Large batches with square-root learning-rate scaling on GPU; the configured values on CPU."""
    factor = hardware.gpu_batch_factor
    if device.type == "cuda" and factor > 1:
        return cfg.batch_size * factor, cfg.lr * math.sqrt(factor)
    return cfg.batch_size, cfg.lr


class Trainer:
    """Trains ``net`` in place with ``step`` under ``cfg`` (epochs, lr, batch size, patience, seed).

    ``hardware``: the model's GPU defaults (:class:`Hardware`), overridden by the run's (``context``);
    ``settings``: the model's flat settings, recorded in checkpoints (a checkpoint of other settings is refused).
    ``validate()`` returns validation metrics containing "NDCG@10" (None: every epoch counts as the best).
    ``run()`` leaves ``net`` holding the best epoch's weights and returns the :class:`FitReport`.
    """

    def __init__(self, net: torch.nn.Module, step: TrainingStep, cfg: TrainerSettings, context: RunContext,
                 validate: Callable[[], dict[str, float]] | None = None, hardware: Hardware = Hardware(),
                 settings: dict[str, Any] | None = None) -> None:
        self.all_settings = settings if settings is not None else cfg.flat()
        self.net, self.step, self.cfg, self.context, self.validate = net, step, cfg, context, validate
        self.device = next(net.parameters()).device
        self.hardware = context.hardware(hardware)
        self.batch_size, lr = effective_batch_and_lr(cfg, self.device, self.hardware)
        self.opt = TrainerOptimizer(net, lr, self.device, self._row_wise(step, context))
        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(cfg.seed if context.seed is None else context.seed)
        self.use_amp = self.hardware.amp and self.device.type == "cuda"

    # Above this many table rows per sample of a batch, a dense Adam step over whole tables costs more than
    # a row-wise one over what the batch touched (benchmarks/bench_sparse.py, one CPU core, batch 4,096: GMF
    # 0.73x at 40,000 rows, 1.14x at 80,555, 3.0x at ml-20m's 165,237; NeuMF, whose tables count twice,
    # 0.98x at 80,000 rows and 1.51x at 161,110).
    ROW_WISE_ROWS_PER_SAMPLE: ClassVar[int] = 16

    def _row_wise(self, step: TrainingStep, context: RunContext) -> bool:
        mode = getattr(step, "row_wise_tables", "off")
        if mode == "off" or self.device.type != "cpu" \
                or context.world_size > 1:
            return False
        rows = sum(m.num_embeddings for m in self.net.modules() if isinstance(m, torch.nn.Embedding))
        return mode == "on" or rows > self.ROW_WISE_ROWS_PER_SAMPLE * self.batch_size

    def _settings(self) -> dict[str, Any]:
        """What a checkpoint records of how it was trained: the model's settings and the effective hardware."""
        return {**self.all_settings, "gpu_batch_factor": self.hardware.gpu_batch_factor, "amp": self.hardware.amp}

    def run(self) -> FitReport:
        try:
            return self._run()
        finally:
            self.opt.close()

    def _run(self) -> FitReport:
        cfg, ctx, net, step = self.cfg, self.context, self.net, self.step
        parallel = _data_parallel(net, step, self.device) if ctx.world_size > 1 else None
        batch_size = max(1, self.batch_size // ctx.world_size)
        ckpt = Path(ctx.checkpoint_dir) if ctx.checkpoint_dir is not None else None
        write_ckpt = ckpt is not None and ctx.is_main
        log: list[dict[str, Any]] = []
        start_epoch, best_epoch, best_metric, bad_epochs = 1, 0, -math.inf, 0
        best_state: dict[str, torch.Tensor] | None = None
        best_valid: dict[str, float] = {}
        signature = step.signature()
        if ctx.resume and ckpt is not None and (ckpt / "state.json").exists():
            _check_resumable(ckpt, self._settings(), signature)
            meta, best_state = load_checkpoint(ckpt, net, self.opt, self.generator)
            start_epoch = meta["epoch"] + 1
            best_epoch, best_metric, bad_epochs = meta["best_epoch"], meta["best_metric"], meta["bad_epochs"]
            best_valid, log = meta["best_valid"], meta["log"]
            if meta.get("finished"):
                start_epoch = cfg.epochs + 1
        if parallel is not None and _from_rank0(start_epoch, self.device) != start_epoch:
            from movierec.errors import MovieRecError

            raise MovieRecError(f"{ckpt}: rank {ctx.rank} does not see the checkpoint rank 0 resumes from (or sees "
                                "another); put the run's .ckpt folder where every machine reads it")

        bar = _Progress(ctx.progress if ctx.is_main else False, cfg.epochs, start_epoch - 1)
        train_seconds = sum(r.get("seconds", 0.0) for r in log)
        samples_done = sum(r.get("samples", 0) for r in log)
        t_start = time.perf_counter()
        stopped_early = False
        epoch = start_epoch - 1
        for epoch in range(start_epoch, cfg.epochs + 1):
            net.train()
            t0 = time.perf_counter()
            total_loss = torch.zeros((), device=self.device)
            n_batches = 0
            for batch in step.batches(self.generator, batch_size, ctx.rank, ctx.world_size):
                with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.use_amp):
                    loss = (step.loss(net, batch, n_batches, self.generator) if parallel is None
                            else parallel(batch, n_batches, self.generator))
                self.opt.zero_grad(set_to_none=True)
                loss.backward()
                self.opt.step()
                total_loss += loss.detach()
                n_batches += 1
            if self.device.type == "cuda":
                torch.cuda.synchronize(self.device)
            seconds = time.perf_counter() - t0
            n_samples = step.samples_per_epoch()
            train_seconds += seconds
            samples_done += n_samples
            record: dict[str, Any] = {"epoch": epoch, "loss": float(total_loss) / max(n_batches, 1),
                                      "seconds": seconds, "samples": n_samples, "samples_per_s": n_samples / seconds,
                                      "row_wise": self.opt.row_wise}
            if self.validate is not None and ctx.is_main:
                net.eval()
                record.update({f"valid_{k}": v for k, v in self.validate().items()})
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
            if write_ckpt:
                meta = {"epoch": epoch, "best_epoch": best_epoch, "best_metric": best_metric,
                        "bad_epochs": bad_epochs, "best_valid": best_valid, "log": log, "finished": stop,
                        "config": self._settings(), "data": signature, "run": ctx.checkpoint_key}
                save_checkpoint(ckpt, net, best_state, self.opt, self.generator, meta)
            # 0: go on, 1: stopped early, 2: stopped by the caller or the time budget (rank 0 decides)
            verdict = 1 if stop else 0
            # the hook hears of every epoch, the one that stops training included; it can only stop a run that
            # would go on
            if ctx.is_main and ctx.on_epoch_end is not None and ctx.on_epoch_end(record) is False and not stop:
                verdict = 2
            if not stop and ctx.time_budget_s is not None and time.perf_counter() - t_start >= ctx.time_budget_s:
                verdict = 2
            if parallel is not None:
                verdict = _from_rank0(verdict, self.device)
            if verdict:
                stopped_early = verdict == 1
                break
        bar.close()
        if best_state is not None:
            net.load_state_dict(best_state)
        if parallel is not None:  # every rank ends with rank 0's kept weights
            _broadcast_state(net)
            del parallel  # its reducer holds the process group: gone before a later fit's wrapper
        net.eval()
        return FitReport(epochs=epoch, best_epoch=best_epoch, samples_per_s=samples_done / max(train_seconds, 1e-9),
                         stopped_early=stopped_early, best_valid=best_valid, train_log=log)


class _StepLoss(torch.nn.Module):
    """The step's loss as a module's forward, so DistributedDataParallel sees one forward per step whatever
    methods of the network the loss calls."""

    def __init__(self, net: torch.nn.Module, step: TrainingStep) -> None:
        super().__init__()
        self.net = net
        self.step = step

    def forward(self, batch: Any, k: int, generator: torch.Generator) -> torch.Tensor:
        return self.step.loss(self.net, batch, k, generator)


def _data_parallel(net: torch.nn.Module, step: TrainingStep, device: torch.device) -> torch.nn.Module:
    from torch.nn.parallel import DistributedDataParallel

    ids = [device.index if device.index is not None else torch.cuda.current_device()] \
        if device.type == "cuda" else None
    # static_graph: the same weights take part in every step (NeuMF leaves its parts' output layers unused),
    # which DDP then learns once instead of searching the graph every step
    return DistributedDataParallel(_StepLoss(net, step), device_ids=ids, static_graph=True)


def _from_rank0(value: int, device: torch.device) -> int:
    import torch.distributed as dist

    t = torch.tensor([value], dtype=torch.int64, device=device)
    dist.broadcast(t, src=0)
    return int(t.item())


def _broadcast_state(net: torch.nn.Module) -> None:
    import torch.distributed as dist

    for t in net.state_dict().values():
        dist.broadcast(t, src=0)


def _check_resumable(checkpoint_dir: Path, config: dict[str, Any], signature: list[int]) -> None:
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
    if saved.get("data", signature) != signature:
        raise MovieRecError(f"{checkpoint_dir}: the checkpoint was trained on other data (sizes {saved['data']} vs "
                            f"{signature}); remove the folder or train without --resume")


class _Progress:
    """A rich progress bar over epochs showing loss and validation HR/NDCG. ``enabled``: False (no-op), True (a
    bar of its own) or a running ``rich.progress.Progress`` to add the bar to (e.g. under a study's overall bar,
    since rich shows one live display at a time); the bar is removed from it when training ends."""

    def __init__(self, enabled: Any, total: int, done: int) -> None:
        self.p = None
        self.own = False
        if enabled is not None and not isinstance(enabled, bool):
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
