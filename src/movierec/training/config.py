"""Hyper-parameters shared by every model trained with the torch loop."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class TrainConfig:
    """Training settings; model configs inherit these and add their own (``--set key=value`` sets any).

    batch_size and lr are the CPU values; on a GPU the loop multiplies the batch by ``gpu_batch_factor``
    and the learning rate by sqrt of that factor (square-root scaling keeps Adam stable at large batches).
    """

    epochs: int = 30
    batch_size: int = 4096
    lr: float = 0.005
    l2: float = 0.0  # L2 penalty on the embeddings used in a batch, mean over the batch
    negatives: int = 4  # sampled negatives per positive, fresh every epoch, never a user's positive
    patience: int = 4  # stop after this many epochs without a better validation NDCG@10; 0 = never
    seed: int = 42
    device: str = "auto"  # "auto" (cuda when available), "cpu", "cuda", "cuda:1", ...
    gpu_batch_factor: int = 16
    amp: bool = True  # bf16 autocast on CUDA (ignored on CPU)
    compile: bool = False  # torch.compile the network
    diversity: float = 0.0  # weight of the genre-diversity regulariser (the study used 0.001)
    diversity_users: int = 16  # users per regulariser evaluation
    diversity_pool: int = 256  # candidate items (one random list shared by those users)
    diversity_every: int = 8  # apply the regulariser every this many steps, its weight scaled to match
    diversity_temperature: float = 0.1
