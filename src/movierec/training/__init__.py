"""Training of torch models: the trainer shell, NCF's pairwise step, checkpoints, regularisers."""

from movierec.training.config import TrainConfig
from movierec.training.pairwise import PairwiseNegativeStep
from movierec.training.trainer import Trainer, TrainingStep, effective_batch_and_lr, resolve_device

__all__ = ["PairwiseNegativeStep", "TrainConfig", "Trainer", "TrainingStep", "effective_batch_and_lr",
           "resolve_device"]
