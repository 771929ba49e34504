"""The seed study's genre-diversity regulariser, vectorised and differentiable.

What it penalises. The study added ``alpha * (summed genre correlation among the 10 highest-scored items
of each batch)`` to the loss. Here, for a list of candidates with logits ``s``:

1. take the 10 highest-scored candidates (a hard selection: indices carry no gradient);
2. turn their logits into weights ``w = softmax(s_top / temperature)``;
3. penalty = sum_{j != k} w_j w_k cos(g_j, g_k) / sum_{j != k} w_j w_k, where g is an item's genre
   multi-hot vector: the weighted mean pairwise genre similarity of the top 10, i.e. a soft
   ``1 - intra-list diversity``. Items without genres have cosine 0 to everything.

Why it has a gradient. The weights are a smooth function of the top-10 logits, so d(penalty)/d(s_j) is
non-zero: it lowers the logits of top items that share genres with the other top items and raises those of
items that add genres, which reshuffles the top of the ranking towards diverse lists. A plain top-10 sum of
correlations (the study's form) is piecewise constant in the scores and gives no useful gradient.

Two scopes, summed, applied every ``diversity_every`` steps with the weight multiplied by that interval
(the same penalty in expectation, at a fraction of the cost):
- the study's: the 10 highest-scored (user, item) samples of the training batch (those logits exist anyway);
- per user: for ``diversity_users`` users of the batch, the top 10 of one random pool of
  ``diversity_pool`` items shared by them; closer to what a user is shown, at the price of scoring
  users x pool extra pairs.
"""

from __future__ import annotations

import torch

TOP = 10


class GenreDiversityRegularizer:
    """Callable penalty over candidate logits; ``genres``: float [n_items, n_genres] on the training device."""

    def __init__(self, genres: torch.Tensor, temperature: float = 0.1, top: int = TOP) -> None:
        norms = genres.norm(dim=1, keepdim=True)
        self.unit = torch.where(norms > 0, genres / norms.clamp_min(1e-12), torch.zeros_like(genres))
        self.temperature = temperature
        self.top = top

    def penalty(self, logits: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """Mean penalty over rows. logits, items: [rows, m] (m >= 2); returns a scalar tensor."""
        k = min(self.top, logits.shape[1])
        top = logits.detach().topk(k, dim=1).indices
        w = torch.softmax(logits.gather(1, top).float() / self.temperature, dim=1)  # [rows, k]
        g = self.unit[items.gather(1, top)]  # [rows, k, n_genres]
        sim = g @ g.transpose(1, 2)  # [rows, k, k]
        pair = w.unsqueeze(2) * w.unsqueeze(1)
        off = 1.0 - torch.eye(k, device=logits.device, dtype=pair.dtype)
        return ((pair * sim * off).sum(dim=(1, 2)) / (pair * off).sum(dim=(1, 2)).clamp_min(1e-12)).mean()

    def batch_penalty(self, logits: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """The study's scope: the whole batch [B] as one list."""
        return self.penalty(logits.unsqueeze(0), items.unsqueeze(0))
