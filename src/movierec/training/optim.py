"""The trainer's optimiser: Adam, with row-wise (lazy) Adam on the embedding tables when asked.

With dense gradients, every step updates every row of every embedding table (and its two Adam moments),
so on a CPU a step costs as much as the catalogue plus the user base, whatever the batch. With row-wise
updates the tables' lookups give sparse gradients and ``torch.optim.SparseAdam`` updates only the rows a
batch touched (their moments too: "lazy" Adam), so a step costs what its batch touches. The other weights
(towers, output layers) keep fused Adam.

The optimiser state is saved per parameter, in the network's parameter order, whichever of the two
optimisers owns it, so a checkpoint written with row-wise updates resumes with dense ones and back (a CPU
run continued on a GPU, or one process continued by several).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


class TrainerOptimizer:
    """Adam over ``net``'s trainable weights; with ``row_wise`` its ``nn.Embedding`` tables get sparse
    gradients and SparseAdam. Call :meth:`close` after training (it turns the tables' sparse gradients off)."""

    def __init__(self, net: nn.Module, lr: float, device: torch.device, row_wise: bool) -> None:
        params = [p for p in net.parameters() if p.requires_grad]
        self.tables = [m for m in net.modules() if isinstance(m, nn.Embedding) and m.weight.requires_grad] \
            if row_wise else []
        for m in self.tables:
            m.sparse = True
        sparse_ids = {id(m.weight) for m in self.tables}
        index = {id(p): k for k, p in enumerate(params)}
        fused = device.type in ("cpu", "cuda")
        self.parts: list[tuple[torch.optim.Optimizer, list[int]]] = []
        dense = [p for p in params if id(p) not in sparse_ids]
        sparse = [p for p in params if id(p) in sparse_ids]
        if dense:
            self.parts.append((torch.optim.Adam(dense, lr=lr, fused=fused), [index[id(p)] for p in dense]))
        if sparse:
            self.parts.append((torch.optim.SparseAdam(sparse, lr=lr), [index[id(p)] for p in sparse]))

    @property
    def row_wise(self) -> bool:
        return bool(self.tables)

    def zero_grad(self, set_to_none: bool = True) -> None:
        for opt, _ in self.parts:
            opt.zero_grad(set_to_none=set_to_none)

    def step(self) -> None:
        for opt, _ in self.parts:
            opt.step()

    def close(self) -> None:
        for m in self.tables:
            m.sparse = False

    def state_dict(self) -> dict[str, Any]:
        """{"state": {parameter index: its Adam state}, "param_groups": [...]} (torch's layout, global indices)."""
        state: dict[int, dict[str, Any]] = {}
        groups = []
        for opt, ids in self.parts:
            sd = opt.state_dict()
            state.update({ids[local]: st for local, st in sd["state"].items()})
            groups += [{**g, "params": [ids[local] for local in g["params"]]} for g in sd["param_groups"]]
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, sd: dict[str, Any]) -> None:
        """Restore per-parameter moments saved by either optimiser; hyper-parameters stay the current ones."""
        saved = {int(k): v for k, v in sd["state"].items()}
        for opt, ids in self.parts:
            is_sparse = isinstance(opt, torch.optim.SparseAdam)
            state = {}
            for local, gid in enumerate(ids):
                if gid not in saved:
                    continue
                st = dict(saved[gid])
                if "step" in st:  # SparseAdam counts steps in an int, Adam in a float32 tensor
                    step = float(st["step"])
                    st["step"] = int(step) if is_sparse else torch.tensor(step, dtype=torch.float32)
                state[local] = st
            opt.load_state_dict({"state": state, "param_groups": opt.state_dict()["param_groups"]})
