"""Training of torch models: the trainer shell, NCF's pairwise step, checkpoints, regularisers."""

from movierec.training.config import Hardware, TrainerSettings
from movierec.training.pairwise import PairwiseNegativeStep, PairwiseSettings
from movierec.training.trainer import Trainer, TrainingStep, effective_batch_and_lr, resolve_device

__all__ = ["Hardware", "PairwiseNegativeStep", "PairwiseSettings", "Trainer", "TrainerSettings", "TrainingStep",
           "effective_batch_and_lr", "resolve_device"]
