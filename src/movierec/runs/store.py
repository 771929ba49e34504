"""The result store: where a run's outcome is kept, and the key that says when it may be reused.

One layout for every run (``movierec train``'s run folder, an experiment's and a study's runs)::

    <run>/result.json        the key and the comparison-table row (written with the rest, in one atomic rename)
    <run>/per_user.parquet   per-user HR@10 and NDCG@10 of the test part under each protocol
    <run>/top10.npz          every evaluated user's full-ranking top 10
    <run>/model/             the model bundle the test read (a train run folder holds it at its root, so the
                             folder itself is servable, with split/ beside it)

An experiment or a study keeps its runs under ``runs/<slug>/`` and its final models under ``final/<slug>/``;
a run's per-epoch checkpoints live beside it in ``<slug>.<key hash>.ckpt/`` (other settings never resume it).

A stored result is reused only when its key matches exactly (:func:`run_key`): the data's content
fingerprint, the split, the model's complete settings (defaults included), the phases, the protocols and
cutoffs, the test-input rule and the movierec version. Otherwise the run is done again and the caller is told
why (:func:`stale_reason`).
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from movierec import __version__
from movierec.data.dataset import Dataset
from movierec.data.splits import Split
from movierec.models import build_model
from movierec.runs.spec import RunSpec, slug

__all__ = ["KEY_FORMAT", "REUSED", "TEST_INPUT", "RunFolder", "check_checkpoints", "data_key", "key_hash",
           "resolved_settings", "run_key", "stale_reason", "stored_reason"]

KEY_FORMAT = 3
"""The layout of the keys below; a stored key of another layout (or none) is never reused. 3: the test part is
read with the validation interaction in each user's input."""

TEST_INPUT = "train+valid"
"""The test-input rule every key records: a user's test scores read the training part and the validation
interaction (everything before the test item)."""

REUSED = "reused (same data, settings, split and version)"
"""What is said of a run whose stored result was reused."""


def resolved_settings(model: str, settings: dict[str, Any]) -> dict[str, Any]:
    """The model's complete configuration for ``settings``: the built model's flat settings, so every default
    counts too (a default changed in a new version changes the key). A hybrid's part
    settings (``a_settings``, ``b_settings``) are expanded to their parts' complete configurations."""
    config = build_model(model, settings).config_dict()
    for part in ("a", "b"):
        if f"{part}_settings" in config and isinstance(config.get(part), str):
            config[f"{part}_settings"] = resolved_settings(config[part], config[f"{part}_settings"])
    return config


def data_key(dataset: Dataset, split: Split) -> dict[str, Any]:
    """What every result on ``split`` of ``dataset`` depends on besides its model: the dataset's name and content
    fingerprint (:meth:`Dataset.fingerprint`, not its path or sizes), the split (its summary: protocol, seed,
    part sizes) and the movierec version."""
    return {"format": KEY_FORMAT, "dataset": {"name": dataset.name, "fingerprint": dataset.fingerprint()},
            "split": split.summary(), "version": __version__}


def run_key(spec: RunSpec, base: dict[str, Any]) -> dict[str, Any]:
    """A finished run is reused only when this key matches exactly: its name, model and complete settings
    (:func:`resolved_settings`), phases, protocols, cutoffs, test-input rule and refit choice, and ``base``
    (:func:`data_key`: data, split, version)."""
    key: dict[str, Any] = {"name": spec.name, "model": spec.model,
                           "config": resolved_settings(spec.model, spec.settings),
                           "phases": list(spec.phases), "ks": [int(k) for k in spec.ks]}
    if spec.hardware:  # set only by runs that ask for it, so a run without it keeps its key
        key["hardware"] = dict(spec.hardware)
    if not spec.final:
        key.update(protocols=list(spec.protocols), test_input=TEST_INPUT, refit=bool(spec.refit))
    return {**key, **base}


def _canonical(value: Any) -> Any:
    """``value`` as it reads back from JSON (tuples become lists, numpy numbers their str), for comparisons."""
    return json.loads(json.dumps(value, sort_keys=True, default=str))


def key_hash(key: dict[str, Any]) -> str:
    """A short hash of a key (12 hex characters), stable across processes."""
    return hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:12]


def _changed_paths(old: Any, new: Any, prefix: str = "") -> list[str]:
    if isinstance(old, dict) and isinstance(new, dict):
        return [p for k in sorted(set(old) | set(new), key=str)
                for p in _changed_paths(old.get(k), new.get(k), f"{prefix}{k}.")]
    return [] if old == new else [prefix.rstrip(".")]


def stale_reason(stored: dict[str, Any] | None, key: dict[str, Any]) -> str:
    """Why a result stored under key ``stored`` is not reused for ``key``: "" when they match, else a phrase
    such as "the data changed since the stored result", "settings changed (lr)" or "version changed
    (0.1.0 -> 0.2.0)" (several joined with "; ")."""
    if not isinstance(stored, dict) or stored.get("format") != KEY_FORMAT:
        return ("it was stored without this version's key (data fingerprint, settings, split, test input, "
                "version)")
    old, new = _canonical(stored), _canonical(key)
    if old == new:
        return ""
    reasons = []
    if old.get("version") != new.get("version"):
        reasons.append(f"version changed ({old.get('version')} -> {new.get('version')})")
    data_changed = old.get("dataset") != new.get("dataset")
    if data_changed:
        o, n = old.get("dataset") or {}, new.get("dataset") or {}
        reasons.append("the data changed since the stored result" if o.get("fingerprint") != n.get("fingerprint")
                       else f"the dataset's name changed ({o.get('name')} -> {n.get('name')})")
    split_changes = _changed_paths(old.get("split"), new.get("split"))
    if data_changed:  # other data splits into other parts: only a changed protocol or seed is news
        split_changes = [p for p in split_changes if p in ("protocol", "seed")]
    if split_changes:
        reasons.append(f"the split changed ({', '.join(split_changes)})")
    if old.get("model") != new.get("model"):
        reasons.append(f"the model changed ({old.get('model')} -> {new.get('model')})")
    elif old.get("config") != new.get("config"):
        reasons.append(f"settings changed ({', '.join(_changed_paths(old.get('config'), new.get('config')))})")
    if old.get("ks") != new.get("ks"):
        reasons.append(f"the cutoffs changed (ks {old.get('ks')} -> {new.get('ks')})")
    if old.get("refit") != new.get("refit"):
        reasons.append(f"the refit before the test changed (refit {old.get('refit')} -> {new.get('refit')})")
    known = {"format", "version", "dataset", "split", "model", "config", "ks", "refit"}
    reasons += [f"{k} changed" for k in sorted(set(old) | set(new)) if k not in known and old.get(k) != new.get(k)]
    return "; ".join(reasons)


@dataclass(frozen=True)
class RunFolder:
    """Where one run is kept. ``bundle_at_root``: the folder is itself the model bundle (``movierec train``'s run
    folder) rather than holding it under ``model/``; ``checkpoint``: the per-epoch checkpoint folder of its fits
    (None: no checkpoints)."""

    path: Path
    bundle_at_root: bool = False
    checkpoint: Path | None = None

    @classmethod
    def in_store(cls, root: str | Path, name: str, key: dict[str, Any], final: bool = False) -> RunFolder:
        """The folder of run ``name`` in an experiment's or study's output folder ``root``."""
        path = Path(root) / ("final" if final else "runs") / slug(name)
        return cls(path, False, path.parent / f"{path.name}.{key_hash(key)}.ckpt")

    @property
    def bundle(self) -> Path:
        return self.path if self.bundle_at_root else self.path / "model"

    @property
    def result_file(self) -> Path:
        return self.path / "result.json"

    @property
    def refit_checkpoint(self) -> Path | None:
        """The checkpoint folder of the run's refit on training + validation (beside ``checkpoint``)."""
        if self.checkpoint is None:
            return None
        return self.checkpoint.with_name(self.checkpoint.name.removesuffix(".ckpt") + ".refit.ckpt")

    def stale_checkpoints(self) -> list[Path]:
        """Checkpoints of this run left by other settings (``<slug>.<other hash>[.refit].ckpt``), to be removed."""
        import glob

        if self.checkpoint is None or self.bundle_at_root:
            return []
        mine = {self.checkpoint, self.refit_checkpoint}
        return [p for p in self.path.parent.glob(f"{glob.escape(self.path.name)}.*.ckpt") if p not in mine]


def check_checkpoints(folder: RunFolder, key_hash: str) -> None:
    """Before a run resumes from ``folder``'s checkpoints: refuse, in one line, one written by another run (other
    model, settings or data: its recorded key hash differs); resuming would replace it. A checkpoint of an older
    movierec records no key: the trainer compares its settings and data sizes instead."""
    from movierec.errors import MovieRecError
    from movierec.training.checkpoint import checkpoint_meta

    for ckpt in (folder.checkpoint, folder.refit_checkpoint):
        meta = checkpoint_meta(ckpt) if ckpt is not None and ckpt.exists() else None
        if meta is not None and meta.get("run") not in (None, key_hash):
            raise MovieRecError(f"{ckpt}: the checkpoint of another run (another model, other settings or other "
                                "data), not this one's; --resume continues only the same run (train without "
                                "--resume, with --force, to discard it)")


def stored_reason(folder: RunFolder, key: dict[str, Any]) -> str | None:
    """None when ``folder`` holds no finished result, else why it is not reused ("" when it is)."""
    done = folder.result_file
    if not done.exists():
        return None
    try:
        meta = json.loads(done.read_text())
    except (OSError, ValueError):
        return "its stored result is unreadable"
    if not isinstance(meta, dict):
        return "its stored result is unreadable"
    reason = stale_reason(meta.get("key"), key)
    if not reason and meta.get("key_hash") != key_hash(key):
        reason = "its stored result's key does not match its hash"
    return reason


def read_stored(folder: RunFolder) -> tuple[dict[str, Any], pd.DataFrame | None, tuple[np.ndarray, np.ndarray] | None]:
    """(result.json, per-user table indexed by user or None, top-10 lists or None) of a finished run."""
    meta = json.loads(folder.result_file.read_text())
    per_user = None
    if (folder.path / "per_user.parquet").exists():
        per_user = pd.read_parquet(folder.path / "per_user.parquet").set_index("user")
    top10 = None
    if (folder.path / "top10.npz").exists():
        with np.load(folder.path / "top10.npz", allow_pickle=False) as z:
            top10 = (z["users"], z["items"])
    # metrics stored as null (NaN in JSON is not strict JSON) come back as NaN
    meta["row"] = {k: float("nan") if v is None else v for k, v in meta.get("row", {}).items()}
    return meta, per_user, top10


def write_tables(tmp: Path, per_user: pd.DataFrame | None, top10: tuple[np.ndarray, np.ndarray] | None) -> None:
    """The per-user table and the top-10 lists into a folder being written."""
    if per_user is not None:
        per_user.reset_index().to_parquet(tmp / "per_user.parquet", index=False)
    if top10 is not None:
        buf = io.BytesIO()
        np.savez(buf, users=top10[0], items=top10[1])
        (tmp / "top10.npz").write_bytes(buf.getvalue())
