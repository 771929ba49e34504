"""The search: an Optuna study of one model's settings, scored on the split's validation part only.

Each trial is a run of the run engine (:meth:`movierec.runs.Session.execute`, phase "fit" only) with the
sampled settings (plus the fixed ones), scored the fitted model on ``split.valid`` (the leave-one-out
validation item of every evaluated user): NDCG@10 under sampled-100 by default, or under full ranking. The
test part is never read (the fit sees ``split.train`` and ``split.valid``; the score sees ``split.valid``).

Sampler: TPE, seeded. Pruner: median. Models trained in epochs report their per-epoch validation NDCG@10
(the trainer's, sampled-100) to the trial through ``RunContext.on_epoch_end``; when the pruner says so the
hook returns False, the trainer stops after that epoch and the trial ends as pruned. Closed-form models are
fitted and scored once.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Callable
from typing import Any

from movierec.data.dataset import Dataset
from movierec.data.splits import Split
from movierec.errors import MovieRecError
from movierec.evaluation.protocols import evaluate_full, evaluate_heldout_sampled
from movierec.models.registry import get_model_class
from movierec.runs import RunSpec, Session
from movierec.runs.spec import split_hardware
from movierec.tuning.spaces import Param

__all__ = ["METRICS", "TrialRow", "TuneResult", "objective_value", "require_optuna", "tune"]

METRICS = ("sampled-100", "full")
"""The protocols the objective (NDCG@10 on the validation part) can be measured under."""


def require_optuna() -> Any:
    """The optuna module, or a one-line error naming the extra that installs it."""
    try:
        import optuna
    except ImportError:
        raise MovieRecError("optuna is not installed; install it with: pip install 'movierec[tune]'") from None
    return optuna


@dataclasses.dataclass
class TrialRow:
    """One finished trial as written to trials.csv: number, state (COMPLETE, PRUNED, FAIL), value (None
    unless complete), the sampled params, seconds, epochs run (0 for closed-form models), the last
    intermediate validation NDCG@10 reported (pruned trials), and the error of a failed trial."""

    number: int
    state: str
    value: float | None
    params: dict[str, Any]
    seconds: float
    epochs: int = 0
    last_intermediate: float | None = None
    error: str = ""
    defaults: bool = False  # trial #0: the model's own defaults (with the fixed settings), not sampled


@dataclasses.dataclass
class TuneResult:
    """What a search found. ``best_settings`` = fixed settings + best params (what best.toml records)."""

    model: str
    metric: str
    params: list[Param]
    fixed: dict[str, Any]
    trials: list[TrialRow]
    seconds: float
    seed: int
    study: Any = dataclasses.field(repr=False, default=None)
    interrupted: bool = False

    @property
    def complete(self) -> list[TrialRow]:
        return [t for t in self.trials if t.state == "COMPLETE"]

    @property
    def best(self) -> TrialRow | None:
        """The complete trial with the highest value (the earliest among equals), or None."""
        done = self.complete
        return max(done, key=lambda t: (t.value, -t.number)) if done else None

    @property
    def beats_defaults(self) -> bool:
        """Whether the best trial is a sampled one that scored above the defaults' trial #0 (ties go to #0)."""
        best = self.best
        return best is not None and not best.defaults

    @property
    def best_settings(self) -> dict[str, Any]:
        best = self.best
        return {**self.fixed, **(best.params if best else {})}

    def count(self, state: str) -> int:
        return sum(t.state == state for t in self.trials)


def objective_value(model: Any, split: Split, metric: str = "sampled-100") -> float:
    """NDCG@10 of a fitted model on the split's validation part under ``metric`` (never the test part)."""
    valid = split.valid
    if valid is None:
        raise MovieRecError(f"the {split.protocol} split has no validation part to tune on")
    if metric == "sampled-100":
        return float(evaluate_heldout_sampled(model, valid, (10,), part="valid").metrics["NDCG@10"])
    if metric == "full":
        return float(evaluate_full(model, split, "valid", (10,)).metrics["NDCG@10"])
    raise MovieRecError(f"--metric {metric!r}: expected one of {', '.join(METRICS)}")


def check_split(split: Split, metric: str) -> None:
    """Refuse, before any trial, a split the objective cannot be measured on."""
    if split.valid is None or len(split.valid) == 0:
        raise MovieRecError(f"the {split.protocol} split has no validation part to tune on; use --split loo")
    if metric == "sampled-100" and split.valid.negatives is None:
        raise MovieRecError(f"the {split.protocol} split's validation part has no sampled negatives; "
                            "use --metric full")


@contextlib.contextmanager
def _quiet_optuna(optuna: Any):
    """Optuna's own per-trial log lines off (the command prints its own), restored afterwards."""
    old = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    try:
        yield
    finally:
        optuna.logging.set_verbosity(old)


def tune(model: str, dataset: Dataset, split: Split, params: list[Param], fixed: dict[str, Any] | None = None,
         *, trials: int, timeout: float | None = None, seed: int = 42, metric: str = "sampled-100",
         device: str = "auto", startup_trials: int = 5, warmup_steps: int = 0,
         on_trial: Callable[[TrialRow, TuneResult], None] | None = None) -> TuneResult:
    """Search ``params`` of ``model`` on ``split`` of ``dataset`` for the best validation NDCG@10 with Optuna (TPE
    seeded with ``seed``, median pruner after ``startup_trials`` complete trials and ``warmup_steps`` epochs).

    Trial #0 is the model's defaults (``fixed`` applied), so the best trial is never worse than them on
    validation; ties go to the defaults. At most ``trials`` trials, and none started after ``timeout`` seconds
    (a running trial finishes).
    ``fixed`` settings are passed to every trial unchanged. Settings the model refuses
    (:class:`MovieRecError`) fail that trial only; anything else stops the search. ``on_trial(row, result)``
    is called after every trial. Ctrl-C ends the search: the result then holds the finished trials and
    ``interrupted`` is True (the caller writes them, then re-raises).
    """
    optuna = require_optuna()
    check_split(split, metric)
    defaults = default_values(model, params)
    if trials < 1:
        raise MovieRecError(f"--trials {trials}: need at least 1")
    fixed = dict(fixed or {})
    result = TuneResult(model, metric, list(params), fixed, [], 0.0, seed)
    sampler = optuna.samplers.TPESampler(seed=seed)
    pruner = optuna.pruners.MedianPruner(n_startup_trials=startup_trials, n_warmup_steps=warmup_steps)
    with _quiet_optuna(optuna):
        study = optuna.create_study(direction="maximize", sampler=sampler, pruner=pruner,
                                    study_name=f"movierec-tune-{model}")
    result.study = study
    session = Session(dataset, split, save_models=False)

    def objective(trial: Any) -> float:
        t0 = time.perf_counter()
        if trial.number == 0:  # the defaults first: a search never leaves the user below them
            sampled = dict(defaults)
            trial.set_user_attr("defaults", sampled)
        else:
            sampled = {p.name: p.suggest(trial) for p in params}
        pruned: list[int] = []
        reported: list[float] = []

        def on_epoch_end(record: dict[str, Any]) -> bool | None:
            value = record.get("valid_NDCG@10")
            if not isinstance(value, float):
                return None
            epoch = int(record.get("epoch", len(reported) + 1))
            reported.append(value)
            trial.report(value, step=epoch)
            if trial.should_prune():
                pruned.append(epoch)
                return False  # the trainer stops after this epoch
            return None

        try:
            settings, hardware = split_hardware({**fixed, **sampled}, f"trial {trial.number}")
            spec = RunSpec(f"trial {trial.number}", model, settings, phases=("fit",), hardware=hardware)
            run = session.execute(spec, device=device, on_epoch_end=on_epoch_end, keep=False,
                                  where=f"trial {trial.number}")
        except MovieRecError as e:
            trial.set_user_attr("error", str(e))
            trial.set_user_attr("seconds", time.perf_counter() - t0)
            raise
        fitted = run.fitted
        trial.set_user_attr("epochs", int(fitted.fit_report_.epochs))
        if reported:
            trial.set_user_attr("last_intermediate", reported[-1])
        if pruned:
            trial.set_user_attr("seconds", time.perf_counter() - t0)
            raise optuna.TrialPruned(f"pruned at epoch {pruned[0]}")
        value = objective_value(fitted, split, metric)
        trial.set_user_attr("seconds", time.perf_counter() - t0)
        return value

    def callback(study: Any, frozen: Any) -> None:
        row = _row(frozen)
        result.trials.append(row)
        result.seconds = time.perf_counter() - t_start
        if on_trial is not None:
            on_trial(row, result)

    t_start = time.perf_counter()
    with _quiet_optuna(optuna):
        try:
            study.optimize(objective, n_trials=trials, timeout=timeout, catch=(MovieRecError,),
                           callbacks=[callback], gc_after_trial=False)
        except KeyboardInterrupt:
            result.interrupted = True
    result.seconds = time.perf_counter() - t_start
    return result


def default_values(model: str, params: list[Param]) -> dict[str, Any]:
    """The model's default value of each searched setting (its config class's), by name."""
    config = get_model_class(model).config_class().flat()
    return {p.name: config[p.name] for p in params}


def _row(frozen: Any) -> TrialRow:
    """A finished Optuna trial as a :class:`TrialRow`."""
    attrs = frozen.user_attrs
    seconds = attrs.get("seconds")
    if seconds is None and frozen.datetime_start is not None and frozen.datetime_complete is not None:
        seconds = (frozen.datetime_complete - frozen.datetime_start).total_seconds()
    return TrialRow(number=frozen.number, state=frozen.state.name,
                    value=float(frozen.value) if frozen.value is not None and frozen.state.name == "COMPLETE" else None,
                    params=dict(attrs.get("defaults", frozen.params)), seconds=float(seconds or 0.0),
                    epochs=int(attrs.get("epochs", 0)), last_intermediate=attrs.get("last_intermediate"),
                    error=str(attrs.get("error", "")), defaults="defaults" in attrs)
