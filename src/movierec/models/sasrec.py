"""SASRec (Kang and McAuley, ICDM 2018): causal self-attention over a user's time-ordered history.

``blocks`` pre-norm transformer blocks (``heads`` heads, a GELU feed-forward layer ``4 x dim`` wide) with a
causal mask turn a left-padded sequence into one ``dim``-wide vector per position; the item and position
embeddings are summed at the input, and the latest item always has the last position's embedding. Training,
losses and scoring are :mod:`movierec.models.sequential`'s.
"""

from __future__ import annotations

import math

import pydantic
import torch
from torch import nn
from torch.nn import functional as F

from movierec.models.sequential import TRAINER_DEFAULTS, NextItemModel, NextItemNet, NextItemSettings, dropout_
from movierec.models.settings import Settings, part, setting
from movierec.training import TrainerSettings

__all__ = ["SASRec", "SASRecSettings"]

_INIT_STD = 0.02  # N(0, 0.02) weight initialisation (as RecBole and BERT)


class SASRecSettings(Settings):
    """SASRec settings.

    The defaults were picked on ml-latest-small's validation items (leave-one-out, 2026-11-30) within a fit
    of about two and a half minutes on a 2-core CPU: small batches (about 100 steps an epoch) learn far
    faster per epoch than 128-sequence ones; dropout 0.5 beat 0.2; max_len 100 learned as well as 200 and
    faster. The loss was settled on validation on 2026-12-07: the full cross-entropy (``auto`` on catalogues up
    to 50,000 items) against the sampled softmax and gBCE (benchmarks/RESULTS.md, "Session-based models").
    """

    train: TrainerSettings = part(TrainerSettings, **TRAINER_DEFAULTS)
    step: NextItemSettings = part(NextItemSettings)
    dim: int = setting(64, "width of the item embeddings and of the network's output", ge=1)
    dropout: float = setting(0.5, "dropout probability in the network", ge=0, lt=1)
    heads: int = setting(2, "attention heads per block (must divide dim)", ge=1)
    blocks: int = setting(2, "self-attention blocks", ge=1)

    @pydantic.model_validator(mode="after")
    def _heads_divide_dim(self) -> SASRecSettings:
        if self.dim % self.heads:
            raise ValueError(f"heads ({self.heads}) must divide dim ({self.dim})")
        return self


class _Block(nn.Module):
    """One pre-norm transformer block: x + Attn(LN(x)), then x + FFN(LN(x)). x: [B, L, dim]."""

    def __init__(self, dim: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.heads, self.dropout = heads, dropout
        self.ln1 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.ln2 = nn.LayerNorm(dim)
        self.ff1 = nn.Linear(dim, 4 * dim)
        self.ff2 = nn.Linear(4 * dim, dim)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """x: [B, L, dim]; mask: bool [B, 1, L, L], True where query t may attend to key s."""
        b, n, d = x.shape
        p, training = self.dropout, self.training
        q, k, v = self.qkv(self.ln1(x)).view(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        if training and p > 0:  # attention written out, so that its dropout draws the cheap masks too
            w = (q @ k.transpose(-1, -2)).mul_(1 / math.sqrt(d // self.heads)).masked_fill_(~mask, -torch.inf)
            a = dropout_(torch.softmax(w, dim=-1), p, training) @ v
        else:
            a = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        x = x + dropout_(self.proj(a.transpose(1, 2).reshape(b, n, d)), p, training)
        return x + dropout_(self.ff2(dropout_(F.gelu(self.ff1(self.ln2(x))), p, training)), p, training)


class SASRecNet(NextItemNet):
    """Item embeddings [n_items + 1, dim] (row n_items: the pad, kept zero), positions [max_len, dim], blocks."""

    def __init__(self, n_items: int, max_len: int, dim: int, heads: int, blocks: int, dropout: float) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim {dim} is not divisible by heads {heads}")
        self.n_items, self.max_len = n_items, max_len
        self.item = nn.Embedding(n_items + 1, dim, padding_idx=n_items)
        self.position = nn.Embedding(max_len, dim)
        self.dropout = dropout
        self.blocks = nn.ModuleList(_Block(dim, heads, dropout) for _ in range(blocks))
        self.ln = nn.LayerNorm(dim)
        self.apply(self._init)

    @staticmethod
    def _init(m: nn.Module) -> None:
        if isinstance(m, nn.Linear | nn.Embedding):
            nn.init.normal_(m.weight, std=_INIT_STD)
            if isinstance(m, nn.Embedding) and m.padding_idx is not None:
                with torch.no_grad():
                    m.weight[m.padding_idx].zero_()
        if isinstance(m, nn.Linear) and m.bias is not None:
            nn.init.zeros_(m.bias)

    def forward(self, seq: torch.Tensor) -> torch.Tensor:
        """Hidden states float [B, L, dim] of left-padded item sequences int64 [B, L] (L <= max_len).

        Position t attends to positions s <= t that hold items (and always to itself, so a pad-only prefix
        stays finite); pad positions are zeroed before the blocks.
        """
        n = seq.shape[1]
        real = seq != self.n_items  # [B, L]
        pos = torch.arange(self.max_len - n, self.max_len, device=seq.device)
        x = self.item(seq) * math.sqrt(self.item.embedding_dim) + self.position(pos)
        x = dropout_(x, self.dropout, self.training) * real.unsqueeze(-1)
        causal = torch.ones(n, n, dtype=torch.bool, device=seq.device).tril()
        eye = torch.eye(n, dtype=torch.bool, device=seq.device)
        mask = (causal & real[:, None, :]) | eye  # [B, L(query), L(key)]
        mask = mask.unsqueeze(1)
        for block in self.blocks:
            x = block(x, mask)
        return self.ln(x)


class SASRec(NextItemModel):
    """SASRec: the representation of a user's latest position, dotted with the item embeddings."""

    name = "sasrec"
    config_class = SASRecSettings

    def _build_net(self, n_items: int) -> SASRecNet:
        c = self.config
        return SASRecNet(n_items, c.step.max_len, c.dim, c.heads, c.blocks, c.dropout)
