"""GRU4Rec (Hidasi et al., ICLR 2016): a recurrent network over a user's time-ordered history.

Item embeddings (dropout on them) feed ``layers`` stacked GRUs ``hidden`` wide; a linear layer maps each
position's state to ``dim`` so that the item embedding table is also the output layer (as RecBole's GRU4Rec).
Sequences arrive left-padded (:mod:`movierec.models.sequential`); the GRU reads them right-padded, from each
row's first real item, so a state never depends on how much padding a batch has (the pads come after the items
and a recurrent state only reads the past): a history scores the same alone or beside longer ones. An empty
history is read as one pad item. Training, losses and scoring are :mod:`movierec.models.sequential`'s: the
full softmax cross-entropy by default, a sampled softmax or gSASRec's gBCE for large catalogues.
"""

from __future__ import annotations

import torch
from torch import nn

from movierec.models.sequential import TRAINER_DEFAULTS, NextItemModel, NextItemNet, NextItemSettings, dropout_
from movierec.models.settings import Settings, part, setting
from movierec.training import TrainerSettings

__all__ = ["GRU4Rec", "GRU4RecNet", "GRU4RecSettings"]


class GRU4RecSettings(Settings):
    """GRU4Rec settings. The network's are RecBole's GRU4Rec defaults (embeddings 64 wide, one GRU layer 128
    wide, dropout 0.3); the training's are SASRec's (not tuned separately). Validation figures of these
    defaults: benchmarks/RESULTS.md, "Session-based models" (2026-12-07)."""

    train: TrainerSettings = part(TrainerSettings, **TRAINER_DEFAULTS)
    step: NextItemSettings = part(NextItemSettings)
    dim: int = setting(64, "width of the item embeddings and of the network's output", ge=1)
    dropout: float = setting(0.3, "dropout on the item embeddings and on the GRU's output", ge=0, lt=1)
    hidden: int = setting(128, "width of the GRU's state", ge=1)
    layers: int = setting(1, "stacked GRU layers", ge=1)


class GRU4RecNet(NextItemNet):
    """Item embeddings [n_items + 1, dim] (row n_items: the pad, kept zero), a GRU, a [hidden -> dim] layer."""

    def __init__(self, n_items: int, dim: int, hidden: int, layers: int, dropout: float) -> None:
        super().__init__()
        self.n_items, self.dropout = n_items, dropout
        self.item = nn.Embedding(n_items + 1, dim, padding_idx=n_items)
        nn.init.xavier_normal_(self.item.weight)
        with torch.no_grad():
            self.item.weight[n_items].zero_()
        self.gru = nn.GRU(dim, hidden, layers, batch_first=True)
        self.out = nn.Linear(hidden, dim)

    def forward(self, seq: torch.Tensor) -> torch.Tensor:
        """Hidden states float [B, L, dim] of left-padded item sequences int64 [B, L]. A pad position's state is
        the output layer's bias (nothing reads it); an all-pad row's last position has read one pad."""
        n = seq.shape[1]
        lengths = (seq != self.n_items).sum(1).clamp_(min=1)  # [B]
        # left-padded -> right-padded: row r's items start at column n - lengths[r]
        cols = (torch.arange(n, device=seq.device)[None, :] + (n - lengths)[:, None]) % n
        x = dropout_(self.item(seq.gather(1, cols)), self.dropout, self.training)
        out, _ = self.gru(x)  # [B, L, hidden]: a row's states at its items never depend on the pads after them
        h = self.out(dropout_(out, self.dropout, self.training))
        back = (torch.arange(n, device=seq.device)[None, :] - (n - lengths)[:, None]) % n  # right -> left
        return h.gather(1, back[:, :, None].expand(-1, -1, h.shape[-1]))


class GRU4Rec(NextItemModel):
    """GRU4Rec: the GRU's state after a user's latest item, mapped to the item space and dotted with e_i."""

    name = "gru4rec"
    config_class = GRU4RecSettings

    def _build_net(self, n_items: int) -> GRU4RecNet:
        c = self.config
        return GRU4RecNet(n_items, c.dim, c.hidden, c.layers, c.dropout)
