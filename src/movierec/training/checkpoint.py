"""Per-epoch training checkpoints without pickle: tensors in safetensors, the rest in JSON.

A checkpoint folder holds ``state.safetensors`` (network, best network, optimizer moments, RNG state)
and ``state.json`` (epoch, step counts, best metric, the log so far). It is written into a temporary
folder and renamed, so an interrupted write leaves the previous checkpoint intact.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from movierec.fsutil import atomic_write_dir


def _optimizer_tensors(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    sd = opt.state_dict()
    tensors, scalars = {}, {}
    for pid, st in sd["state"].items():
        for k, v in st.items():
            if torch.is_tensor(v):
                tensors[f"opt.{pid}.{k}"] = v.detach().cpu().contiguous()
            else:
                scalars[f"{pid}.{k}"] = v
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def save_checkpoint(path: Path, net: torch.nn.Module, best: dict[str, torch.Tensor] | None,
                    opt: torch.optim.Optimizer, generator: torch.Generator, meta: dict[str, Any]) -> None:
    tensors = {f"net.{k}": v.detach().cpu().contiguous() for k, v in net.state_dict().items()}
    if best is not None:
        tensors.update({f"best.{k}": v.detach().cpu().contiguous() for k, v in best.items()})
    opt_tensors, opt_meta = _optimizer_tensors(opt)
    tensors.update(opt_tensors)
    tensors["rng"] = generator.get_state().cpu()
    header = {**meta, "optimizer": opt_meta}

    def write(tmp: Path) -> None:
        save_file(tensors, str(tmp / "state.safetensors"))
        (tmp / "state.json").write_text(json.dumps(header))

    atomic_write_dir(path, write)


def load_checkpoint(path: Path, net: torch.nn.Module, opt: torch.optim.Optimizer,
                    generator: torch.Generator) -> tuple[dict[str, Any], dict[str, torch.Tensor] | None]:
    """Restore ``net``, ``opt`` and ``generator`` in place; return (meta, best network state or None)."""
    header = json.loads((path / "state.json").read_text())
    t = load_file(str(path / "state.safetensors"))
    device = next(net.parameters()).device
    net.load_state_dict({k[4:]: v for k, v in t.items() if k.startswith("net.")})
    best = {k[5:]: v.to(device) for k, v in t.items() if k.startswith("best.")} or None
    opt_meta = header.pop("optimizer")
    state: dict[int, dict[str, Any]] = {}
    for k, v in t.items():
        if k.startswith("opt."):
            _, pid, name = k.split(".", 2)
            state.setdefault(int(pid), {})[name] = v if name == "step" else v.to(device)
    for k, v in opt_meta["scalars"].items():
        pid, name = k.split(".", 1)
        state.setdefault(int(pid), {})[name] = v
    opt.load_state_dict({"state": state, "param_groups": opt_meta["param_groups"]})
    generator.set_state(t["rng"])
    return header, best


def checkpoint_meta(path: Path) -> dict[str, Any] | None:
    """What the checkpoint folder ``path`` says of itself (its ``state.json``: epoch, config, data, the run's key
    hash under "run"), or None when ``path`` is not a checkpoint movierec wrote (anything else, or unreadable)."""
    path = Path(path)
    if path.is_symlink() or not path.is_dir():
        return None
    try:
        names = {p.name for p in path.iterdir()}
        meta = json.loads((path / "state.json").read_text()) if "state.json" in names else None
    except (OSError, ValueError):
        return None
    if names != {"state.json", "state.safetensors"} or not isinstance(meta, dict) or "epoch" not in meta:
        return None
    return meta
