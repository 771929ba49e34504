"""The torch training loop shared by every neural model, its checkpoints and regularisers."""

from movierec.training.config import TrainConfig
from movierec.training.loop import TrainResult, resolve_device, train_network

__all__ = ["TrainConfig", "TrainResult", "resolve_device", "train_network"]
