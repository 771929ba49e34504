"""The trainer shell's settings (a part of every trained model's settings) and how a model uses a GPU."""

from __future__ import annotations

from dataclasses import dataclass

from movierec.models.settings import Settings, setting


class TrainerSettings(Settings):
    """What the trainer shell (:mod:`movierec.training.trainer`) reads: the epochs, the optimiser's step, early
    stopping and the seed. A model gives its own defaults with ``part(TrainerSettings, epochs=20, ...)``.

    batch_size and lr are the CPU values; on a GPU the trainer multiplies the batch by the run's
    :class:`Hardware` ``gpu_batch_factor`` and the learning rate by sqrt of that factor.
    """

    title = "trainer"

    epochs: int = setting(30, "training epochs (at most: early stopping may end sooner)", ge=1)
    batch_size: int = setting(4096, "training samples per step on a CPU (a model's step says what a sample is)",
                              ge=1)
    lr: float = setting(0.005, "Adam learning rate", gt=0)
    patience: int = setting(4, "stop after this many epochs without a better validation NDCG@10; 0 = never", ge=0)
    seed: int = setting(42, "seed of the weights' initialisation, the sampling and the shuffling", ge=0)


@dataclass(frozen=True)
class Hardware:
    """How a model uses a GPU, ignored on a CPU: not a setting of the model but of the run (``RunContext``
    ``gpu_batch_factor`` / ``amp``, ``train --gpu-batch-factor`` / ``--amp``, a run's keys in a TOML). A model
    class declares its defaults (``Recommender.hardware``).

    gpu_batch_factor: batch multiplier on a GPU, the learning rate scaled by its square root (square-root
    scaling keeps Adam stable at large batches); amp: bf16 autocast on CUDA.
    """

    gpu_batch_factor: int = 16
    amp: bool = True
