"""EASE (Steck 2019, "Embarrassingly Shallow Autoencoders for Sparse Data"): closed-form item-item weights.

With X the binary user x item training matrix [n_users, n_items] and G = XᵀX + λI, the weights are
B = I - P·diag(1/diag(P)) with P = G⁻¹, so diag(B) = 0 (an item never predicts itself), and
score(u, i) = X[u] · B[:, i] for a trained user and for any history alike (exact).

λ (``l2``) is chosen on the validation items when ``l2 = 0``: the Gram matrix is factored once per candidate
λ (a Cholesky solve, float32), starting from ``l2_start`` and moving by ``l2_step`` in the direction that
improves validation NDCG@10 (sampled-100, the protocol the trainer shell validates with) until it stops
improving. The Gram matrix and its inverse are [n_items, n_items]: the fit refuses, with the memory it
would need, when that does not fit in the machine's available memory (or the GPU's).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch

from movierec.data.dataset import Catalog, Interactions
from movierec.data.splits import HeldOut
from movierec.errors import MovieRecError
from movierec.evaluation.protocols import evaluate_heldout_sampled
from movierec.models.base import FitReport, History, Recommender, RunContext, binary_rows
from movierec.models.settings import Settings, setting
from movierec.training import resolve_device

__all__ = ["EASE", "EASESettings", "ease_memory_bytes"]

_MATRICES = 3  # Gram, its factor and the weights live at once during the fit
_MAX_STEPS = 8  # at most this many λ moves when tuning


class EASESettings(Settings):
    l2: float = setting(0.0, "L2 weight λ on the item-item weights; 0 = choose it on the validation items", ge=0)
    l2_start: float = setting(250.0, "first λ tried when choosing on validation", gt=0)
    l2_step: float = setting(2.0, "factor between successive λ tried when choosing on validation", gt=1)


def ease_memory_bytes(n_items: int) -> int:
    """Peak bytes of the fit's dense float32 [n_items, n_items] matrices (the scoring batch aside)."""
    return _MATRICES * 4 * n_items * n_items


def _available_bytes(device: torch.device) -> int | None:
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


class EASE(Recommender):
    name = "ease"
    exact_history = True
    config_class = EASESettings

    def _fit(self, train: Interactions, catalog: Catalog | None, valid: HeldOut | None,
             context: RunContext) -> FitReport:
        device = resolve_device(context.device)
        n = self.seen_.shape[1]
        need, have = ease_memory_bytes(n), _available_bytes(device)
        if have is not None and need > have:
            raise MovieRecError(
                f"EASE on {n:,} items needs about {need / 2**30:.1f} GiB for its item x item matrices; "
                f"{device} has {have / 2**30:.1f} GiB available (use ials or another factor model)")
        if device.type == "cpu":
            gram = torch.from_numpy((self.seen_.T @ self.seen_).toarray().astype(np.float32))
        else:
            x = _to_torch(self.seen_, device)
            gram = torch.sparse.mm(x.t(), x).to_dense()
            del x
        report = FitReport()
        if self.config.l2 > 0 or valid is None or valid.negatives is None:
            self.w_ = _weights(gram, self.config.l2 or self.config.l2_start)
            report.chosen = {"l2": float(self.config.l2 or self.config.l2_start)}
            return report
        tried: dict[float, float] = {}
        # the best weights so far are kept when a fourth matrix fits (one factorisation less at the end)
        have_host = _available_bytes(torch.device("cpu"))
        keep_best = have_host is not None and ease_memory_bytes(n) + 4 * n * n <= have_host
        best_w: dict[float, np.ndarray] = {}

        def trial(lam: float) -> float:
            self.w_ = None  # the previous weights go before the next factorisation (the memory bound above)
            self.w_ = _weights(gram, lam)
            tried[lam] = evaluate_heldout_sampled(self, valid, (10,)).metrics["NDCG@10"]
            if keep_best and (not best_w or tried[lam] > max(tried[k] for k in best_w)):
                best_w.clear()
                best_w[lam] = self.w_
            return tried[lam]

        lam, step = self.config.l2_start, self.config.l2_step
        best = trial(lam)
        up = trial(lam * step)
        direction = step if up > best else 1 / step
        if up > best:
            lam, best = lam * step, up
        for _ in range(_MAX_STEPS):
            nxt = lam * direction
            score = tried.get(nxt) if nxt in tried else trial(nxt)
            if score <= best:
                break
            lam, best = nxt, score
        self.w_ = None
        self.w_ = best_w[lam] if lam in best_w else _weights(gram, lam)
        self.l2_tried_ = {float(k): float(v) for k, v in tried.items()}  # λ -> validation NDCG@10
        report.chosen, report.tuned = {"l2": float(lam)}, True
        report.best_valid = {"NDCG@10": best}
        return report

    # -- scoring -----------------------------------------------------------------------------------
    def score(self, users: np.ndarray, items: np.ndarray | None = None) -> np.ndarray:
        users = np.atleast_1d(np.asarray(users, dtype=np.int64))
        return self._gather(self._rows_times_w(self.seen_[users]), items)

    def _score_history(self, history: History, items: np.ndarray | None) -> np.ndarray:
        return self._gather(self._rows_times_w(history.matrix(self.n_items)), items)

    def _rows_times_w(self, rows: sp.csr_matrix) -> np.ndarray:
        """Binary rows [n, n_items] times the weights: float32 [n, n_items]."""
        return np.asarray(binary_rows(rows) @ self.w_, dtype=np.float32)

    def item_similarity(self, items: np.ndarray, others: np.ndarray | None = None) -> np.ndarray:
        """The learned weights, either direction: max(B[a, b], B[b, a])."""
        items = np.asarray(items, dtype=np.int64)
        cols = slice(None) if others is None else np.asarray(others, dtype=np.int64)
        return np.maximum(self.w_[items][:, cols], self.w_[cols][:, items].T).astype(np.float32)

    # -- persistence -------------------------------------------------------------------------------
    def _state(self) -> dict[str, np.ndarray]:
        return {"w": self.w_}

    def _load_state(self, state: dict[str, np.ndarray]) -> None:
        self.w_ = np.ascontiguousarray(state["w"], dtype=np.float32)


def _to_torch(m: sp.csr_matrix, device: torch.device) -> torch.Tensor:
    coo = m.tocoo()
    idx = torch.from_numpy(np.vstack([coo.row, coo.col]).astype(np.int64))
    return torch.sparse_coo_tensor(idx, torch.ones(len(coo.row)), m.shape, device=device,
                                   check_invariants=False).coalesce()


def _weights(gram: torch.Tensor, lam: float) -> np.ndarray:
    """B = I - P / diag(P) with P = (gram + λI)⁻¹ (Cholesky: gram + λI is symmetric positive definite)."""
    g = gram.clone()
    g.diagonal().add_(float(lam))
    factor, info = torch.linalg.cholesky_ex(g)
    if int(info) != 0:  # never for λ > 0 in exact arithmetic; float32 round-off on huge counts
        g = g.double()
        factor = torch.linalg.cholesky(g)
    del g
    p = torch.cholesky_inverse(factor).float()
    del factor
    p.div_(-p.diagonal().clone()[None, :])
    p.diagonal().zero_()
    return p.cpu().numpy()
