"""Settings shared by every model trained by the trainer shell (:mod:`movierec.training.trainer`)."""

from __future__ import annotations

from dataclasses import dataclass

from movierec.models.settings import setting


@dataclass
class TrainConfig:
    """Training settings; model configs inherit these and add their own (``--set key=value`` sets any).

    batch_size and lr are the CPU values; on a GPU the trainer multiplies the batch by ``gpu_batch_factor``
    and the learning rate by sqrt of that factor (square-root scaling keeps Adam stable at large batches).
    The device is not a setting: it belongs to the run (``RunContext.device``, ``train --device``).
    """

    epochs: int = setting(30, "training epochs (at most: early stopping may end sooner)", ge=1)
    batch_size: int = setting(4096, "training samples per step on a CPU", ge=1)
    lr: float = setting(0.005, "Adam learning rate", gt=0)
    l2: float = setting(0.0, "L2 penalty on the embeddings used in a batch, mean over the batch", ge=0)
    negatives: int = setting(4, "sampled negatives per positive, fresh every epoch, never a user's positive", ge=1)
    patience: int = setting(4, "stop after this many epochs without a better validation NDCG@10; 0 = never", ge=0)
    seed: int = setting(42, "seed of the weights' initialisation, the negatives and the shuffling", ge=0)
    gpu_batch_factor: int = setting(16, "batch multiplier on a GPU (learning rate scaled by its square root)", ge=1)
    amp: bool = setting(True, "bf16 autocast on CUDA (ignored on CPU)")
    compile: bool = setting(False, "torch.compile the network")
    sparse: str = setting("auto", "row-wise (lazy) Adam on the embedding tables, so a step costs what its batch "
                          "touches, not the whole tables: on (on a CPU in one process), off, or auto (on when the "
                          "tables hold over 16 rows per sample of a batch; dense fused Adam on a GPU and under "
                          "torchrun)", choices=("auto", "on", "off"))
    diversity: float = setting(0.0, "weight of the genre-diversity regulariser (the study used 0.001)", ge=0)
    diversity_users: int = setting(16, "users per regulariser evaluation", ge=0)
    diversity_pool: int = setting(256, "candidate items (one random list shared by those users)", ge=2)
    diversity_every: int = setting(8, "apply the regulariser every this many steps, its weight scaled to match", ge=1)
    diversity_temperature: float = setting(0.1, "softmax temperature of the regulariser's top-10 weights", gt=0)
