"""Train/validation/test splits, exactly as docs/architecture.md defines them.

- ``leave_one_out``: per user the latest interaction (max timestamp; ties: the later row) is the test
  item, the second latest the validation item, the rest is train. Users with fewer than 3 interactions
  stay in train and are not evaluated. Sampled-100 negatives (99 per user, uniform over the items the
  user never interacted with, seed 42) are drawn once, separately for validation and test.
- ``vae_cf``: Liang et al. 2018 strong generalisation (held-out users, 80/20 fold-in).
- NCF format (``NAME.train.rating``, ``NAME.test.rating``, ``NAME.test.negative``): export and import.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from safetensors.numpy import load_file, save_file

from movierec.data.dataset import Dataset, IdMap, Interactions
from movierec.data.sampling import NotEnoughNegativesError, positive_keys, sample_negatives
from movierec.errors import DataError, MovieRecError
from movierec.fsutil import atomic_write_bytes, atomic_write_dir, read_json

N_SAMPLED_NEGATIVES = 99
DEFAULT_SEED = 42


@dataclass
class HeldOut:
    """Held-out interactions of one split part (validation or test).

    user, item: int32 [n] (loo: one row per evaluated user, users ascending).
    negatives: int32 [n, 99] sampled-100 candidates for each row, or None.
    fold_in: for vae-cf, the users' fold-in interactions (the models see them at prediction time).
    """

    user: np.ndarray
    item: np.ndarray
    negatives: np.ndarray | None = None
    fold_in: Interactions | None = None
    timestamp: np.ndarray | None = None  # int64 [n] where known
    rating: np.ndarray | None = None  # float32 [n] where known (splits saved by older versions have none)

    def __len__(self) -> int:
        return len(self.user)

    @property
    def users(self) -> np.ndarray:
        """Distinct evaluated users, ascending."""
        return np.unique(self.user)


@dataclass
class Split:
    """A train set plus validation and test hold-outs over the same index spaces."""

    protocol: str
    train: Interactions
    valid: HeldOut | None
    test: HeldOut
    seed: int = DEFAULT_SEED
    meta: dict = field(default_factory=dict)
    #: item indices that full ranking is restricted to (the held-out movies of a cold-item split)
    candidates: np.ndarray | None = None

    @property
    def n_users(self) -> int:
        return self.train.n_users

    @property
    def n_items(self) -> int:
        return self.train.n_items

    def part(self, which: str) -> HeldOut:
        if which == "test":
            return self.test
        if which == "valid":
            if self.valid is None:
                raise ValueError(f"the {self.protocol} split has no validation part")
            return self.valid
        raise ValueError(f"unknown split part {which!r} (expected 'valid' or 'test')")

    def test_input(self) -> Interactions:
        """What a model reads of each user when it ranks the test part: everything the user did before the test
        item. Under leave-one-out that is the training part plus the validation interaction (the user's second
        latest, which came before the test item), in one :class:`Interactions` whose per-user time order puts
        the validation interaction last. A split with no validation part (cold-items) or whose held-out users
        are read from their fold-in part (vae-cf) gives its training part."""
        if self.valid is None or self.valid.fold_in is not None:
            return self.train
        return _concat(self.train, self.valid, _fill_rating(self.train))

    def summary(self) -> dict:
        return {
            "protocol": self.protocol,
            "seed": self.seed,
            "train": len(self.train),
            "valid": 0 if self.valid is None else len(self.valid),
            "test": len(self.test),
            "users": self.n_users,
            "items": self.n_items,
            **self.meta,
        }

    # -- persistence (no pickle: safetensors arrays + a json header) -------------------------------
    def save(self, path: str | Path) -> None:
        """Write ``split.safetensors`` and ``split.json`` into folder ``path`` (atomically)."""
        path = Path(path)
        arrays: dict[str, np.ndarray] = {
            "train.user": self.train.user,
            "train.item": self.train.item,
            "train.rating": self.train.rating,
            "train.timestamp": self.train.timestamp,
        }
        for name, part in (("valid", self.valid), ("test", self.test)):
            if part is None:
                continue
            arrays[f"{name}.user"] = part.user
            arrays[f"{name}.item"] = part.item
            if part.negatives is not None:
                arrays[f"{name}.negatives"] = part.negatives
            if part.timestamp is not None:
                arrays[f"{name}.timestamp"] = part.timestamp
            if part.rating is not None:
                arrays[f"{name}.rating"] = part.rating
            if part.fold_in is not None:  # vae-cf: what the held-out users did, shown to models at prediction
                for col in ("user", "item", "rating", "timestamp"):
                    arrays[f"{name}.fold_in.{col}"] = getattr(part.fold_in, col)
        if self.candidates is not None:
            arrays["candidates"] = self.candidates
        header = {"protocol": self.protocol, "seed": self.seed, "n_users": self.n_users,
                  "n_items": self.n_items, "meta": self.meta}
        atomic_write_dir(path, lambda tmp: (
            save_file({k: np.ascontiguousarray(v) for k, v in arrays.items()}, str(tmp / "split.safetensors")),
            (tmp / "split.json").write_text(json.dumps(header, indent=2)),
        ))

    @classmethod
    def load(cls, path: str | Path) -> Split:
        """Read a split folder written by :meth:`save`; a missing, unreadable or inconsistent file raises a
        DataError naming it."""
        from safetensors import SafetensorError

        path = Path(path)
        json_path, arrays_path = path / "split.json", path / "split.safetensors"
        for f in (json_path, arrays_path):
            if not f.exists():
                raise DataError("split files not found (split.json, split.safetensors)", path)
            if not f.is_file():
                raise DataError("not a file", f)
        header = read_json(json_path)
        try:
            a = load_file(str(arrays_path))
        except (OSError, SafetensorError) as e:
            raise DataError(f"not a readable safetensors file ({e})", arrays_path) from e
        try:
            nu, ni = int(header["n_users"]), int(header["n_items"])
            train = Interactions(a["train.user"], a["train.item"], a["train.rating"], a["train.timestamp"], nu, ni)
            parts = {}
            for name in ("valid", "test"):
                if f"{name}.user" in a:
                    fold_in = None
                    if f"{name}.fold_in.user" in a:
                        fold_in = Interactions(*(a[f"{name}.fold_in.{c}"] for c in ("user", "item", "rating",
                                                                                      "timestamp")), nu, ni)
                    parts[name] = HeldOut(a[f"{name}.user"], a[f"{name}.item"], a.get(f"{name}.negatives"),
                                          fold_in, timestamp=a.get(f"{name}.timestamp"),
                                          rating=a.get(f"{name}.rating"))
            split = cls(header["protocol"], train, parts.get("valid"), parts["test"], header["seed"],
                        header.get("meta", {}), a.get("candidates"))
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise DataError(f"not a movierec split ({type(e).__name__}: {e})", path) from e
        for name, idx, n in (("user", train.user, nu), ("item", train.item, ni)):
            if len(idx) and (int(idx.min()) < 0 or int(idx.max()) >= n):
                raise DataError(f"train {name} indices outside 0..{n - 1}", arrays_path)
        return split


def _latest_order(inter: Interactions) -> np.ndarray:
    """Row order by (user, timestamp, row): each user's rows end with the latest interaction.

    One stable argsort of a packed (user, timestamp) key when it fits in 63 bits (about 6x faster than a
    three-key lexsort on 20M rows); the stable sort keeps file order among equal timestamps.
    """
    ts = inter.timestamp
    if len(ts) == 0:
        return np.arange(0)
    span = int(ts.max()) - int(ts.min())
    if span < (1 << 32) and inter.n_users < (1 << 30):
        key = (inter.user.astype(np.int64) << 32) | (ts - ts.min())
        return np.argsort(key, kind="stable")
    return np.lexsort((np.arange(len(inter)), ts, inter.user))


def leave_one_out(
    inter: Interactions,
    seed: int = DEFAULT_SEED,
    n_negatives: int = N_SAMPLED_NEGATIVES,
    validation: bool = True,
) -> Split:
    """The NCF leave-one-out split with a validation item and sampled-100 negatives (see module doc)."""
    order = _latest_order(inter)
    u_sorted = inter.user[order]
    counts = np.bincount(inter.user, minlength=inter.n_users)
    ends = np.cumsum(counts)  # position after each user's last row in `order`
    need = 3 if validation else 2
    eval_users = np.nonzero(counts >= need)[0]
    test_rows = order[ends[eval_users] - 1]
    held = np.zeros(len(inter), dtype=bool)
    held[test_rows] = True
    valid_rows = None
    if validation:
        valid_rows = order[ends[eval_users] - 2]
        held[valid_rows] = True
    assert (u_sorted[ends[eval_users] - 1] == eval_users).all()

    rng = np.random.default_rng(seed)
    keys = positive_keys(inter.user, inter.item, inter.n_items)
    valid = None
    if validation:
        vneg = sample_negatives(eval_users, n_negatives, keys, inter.n_items, rng) if n_negatives else None
        valid = HeldOut(eval_users.astype(np.int32), inter.item[valid_rows], vneg,
                        timestamp=inter.timestamp[valid_rows], rating=inter.rating[valid_rows])
    tneg = sample_negatives(eval_users, n_negatives, keys, inter.n_items, rng) if n_negatives else None
    test = HeldOut(eval_users.astype(np.int32), inter.item[test_rows], tneg, timestamp=inter.timestamp[test_rows],
                   rating=inter.rating[test_rows])
    return Split("loo", inter.subset(~held), valid, test, seed,
                 {"evaluated_users": len(eval_users), "negatives": n_negatives})


def vae_cf(
    inter: Interactions,
    n_heldout_users: int = 10_000,
    min_rating: float = 4.0,
    min_user_items: int = 5,
    test_fraction: float = 0.2,
    seed: int = 98765,
) -> Split:
    """Liang et al. 2018 strong generalisation.

    Ratings >= ``min_rating`` are positives; users with >= ``min_user_items`` positives are kept; items
    are those seen in the training users. ``n_heldout_users`` users go to validation and as many to test;
    each held-out user's items split into fold-in (80%) and held-out (20%) at random.
    The held-out parts carry ``fold_in`` interactions; ``train`` holds the training users only.
    """
    pos = inter.subset(inter.rating >= min_rating)
    counts = np.bincount(pos.user, minlength=inter.n_users)
    keep_users = np.nonzero(counts >= min_user_items)[0]
    rng = np.random.default_rng(seed)
    perm = rng.permutation(keep_users)
    n_held = min(n_heldout_users, len(perm) // 3)
    tr_users, vd_users, te_users = perm[: len(perm) - 2 * n_held], perm[-2 * n_held: -n_held], perm[-n_held:]
    role = np.full(inter.n_users, -1, dtype=np.int8)
    role[tr_users], role[vd_users], role[te_users] = 0, 1, 2
    r = role[pos.user]
    train = pos.subset(r == 0)
    train_items = np.zeros(inter.n_items, dtype=bool)
    train_items[train.item] = True

    def held(code: int) -> HeldOut:
        part = pos.subset((r == code) & train_items[pos.item])
        # Random 80/20 per user: sort rows by (user, random key), hold out the last 20% of each user.
        key = rng.random(len(part))
        order = np.lexsort((key, part.user))
        u = part.user[order]
        cnt = np.bincount(u, minlength=inter.n_users)
        start = np.cumsum(cnt) - cnt
        rank = np.arange(len(u)) - start[u]
        n_test = np.ceil(cnt * test_fraction).astype(np.int64)
        is_test = rank >= (cnt - n_test)[u]
        rows = order[is_test]
        return HeldOut(part.user[rows], part.item[rows], None, part.subset(order[~is_test]))

    return Split("vae-cf", train, held(1), held(2), seed,
                 {"heldout_users": int(n_held), "min_rating": min_rating})


def cold_items(inter: Interactions, fraction: float = 0.1, seed: int = DEFAULT_SEED) -> Split:
    """Hold out ``fraction`` of the movies entirely: no model sees their ratings in training.

    test: every interaction with a held-out movie; full ranking ranks them among the held-out movies only
    (``candidates``). There is no validation part (models train their configured epochs).
    """
    rng = np.random.default_rng(seed)
    rated = np.flatnonzero(inter.item_counts() > 0)
    cold = np.sort(rng.choice(rated, size=max(1, round(fraction * len(rated))), replace=False))
    is_cold = np.zeros(inter.n_items, dtype=bool)
    is_cold[cold] = True
    held = is_cold[inter.item]
    test = inter.subset(held)
    order = np.lexsort((test.item, test.user))
    part = HeldOut(test.user[order], test.item[order], timestamp=test.timestamp[order], rating=test.rating[order])
    return Split("cold-items", inter.subset(~held), None, part, seed,
                 {"cold_items": len(cold), "fraction": fraction}, cold.astype(np.int32))


# -- NCF repository format -------------------------------------------------------------------------
def export_ncf(split: Split, out_dir: str | Path, name: str) -> list[Path]:
    """Write ``NAME.train.rating``, ``NAME.test.rating``, ``NAME.test.negative`` (tab-separated, 0-based).

    The validation item goes back into train (the NCF files have no validation part), as in the paper.
    """
    if split.test.negatives is None:
        raise ValueError("the split has no sampled negatives to export")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tr = split.train
    if split.valid is not None:
        tr = _concat(tr, split.valid, 1.0)
    train = pd.DataFrame({"u": tr.user, "i": tr.item, "r": tr.rating, "t": tr.timestamp})
    test_ts = split.test.timestamp if split.test.timestamp is not None else np.zeros(len(split.test), np.int64)
    test = pd.DataFrame({"u": split.test.user, "i": split.test.item, "r": 1.0, "t": test_ts})
    paths = [out / f"{name}.train.rating", out / f"{name}.test.rating", out / f"{name}.test.negative"]
    _write_text(paths[0], train.to_csv(sep="\t", header=False, index=False, float_format="%g"))
    _write_text(paths[1], test.to_csv(sep="\t", header=False, index=False, float_format="%g"))
    head = pd.Series([f"({u},{i})" for u, i in zip(split.test.user.tolist(), split.test.item.tolist(), strict=True)])
    neg = pd.DataFrame(split.test.negatives)
    neg.insert(0, "head", head)
    _write_text(paths[2], neg.to_csv(sep="\t", header=False, index=False))
    return paths


def _write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def with_valid_in_train(split: Split) -> Split:
    """The same split with its validation interactions moved into training: each user trains on everything
    but the test item (a refit before the test; how the peer libraries in ../shared/reference/peers.md were
    measured). The test part and its negatives are unchanged; the returned split has no validation part.
    The moved interactions keep their ratings (splits saved by older versions recorded none: they get the training
    maximum, fine for models of binary data, not for rating-weighted ones)."""
    if split.valid is None or split.valid.fold_in is not None:
        return split
    return dataclasses.replace(split, train=split.test_input(), valid=None,
                               meta={**split.meta, "valid_in_train": True})


def everything(dataset: Dataset) -> Split:
    """Every interaction of ``dataset`` as training data, nothing held out: the split of a final model (one
    trained for serving). Its test part is empty and it has no validation part."""
    inter = dataset.interactions
    empty = np.zeros(0, np.int32)
    test = HeldOut(empty, empty.copy(), timestamp=np.zeros(0, np.int64), rating=np.zeros(0, np.float32))
    return Split("all", inter, None, test, 0, {"final": True})


def _fill_rating(train: Interactions) -> float:
    """The rating given to held-out interactions of a split that recorded none (saved by an older version)."""
    return float(train.rating.max()) if len(train) else 1.0


def _concat(tr: Interactions, part: HeldOut, rating: float) -> Interactions:
    """``tr`` followed by the held-out interactions of ``part`` (their own ratings where recorded, else
    ``rating``)."""
    n = len(part)
    ts = part.timestamp if part.timestamp is not None else np.zeros(n, np.int64)
    ratings = part.rating if part.rating is not None else np.full(n, rating, np.float32)
    return Interactions(
        np.concatenate([tr.user, part.user]), np.concatenate([tr.item, part.item]),
        np.concatenate([tr.rating, ratings]),
        np.concatenate([tr.timestamp, ts]), tr.n_users, tr.n_items,
    )


def _read_tsv(path: Path, n_cols: int, names: list[str]) -> pd.DataFrame:
    import pyarrow.csv as pacsv

    try:
        table = pacsv.read_csv(
            path,
            read_options=pacsv.ReadOptions(column_names=names[:n_cols]),
            parse_options=pacsv.ParseOptions(delimiter="\t", quote_char=False),
            convert_options=pacsv.ConvertOptions(column_types={n: pa.float64() for n in names[:n_cols]}),
        )
    except pa.ArrowInvalid as e:
        raise DataError(f"malformed NCF file ({str(e).splitlines()[0]})", path) from e
    return table.to_pandas()


def load_ncf_folder(path: str | Path, validation: bool = True) -> Dataset:
    """Load a folder in the NCF repository's format as a Dataset with a predefined split.

    The ids in the files are 0-based indices and stay so (the IdMap is the identity). When
    ``validation`` is set, each user's latest train interaction becomes the validation item (the test
    item is never used for tuning); its 99 negatives are drawn like ours (seed 42).
    """
    path = Path(path)
    trains = sorted(path.glob("*.train.rating"))
    if not trains:
        raise DataError("no *.train.rating file (NCF format)", path)
    name = trains[0].name[: -len(".train.rating")]
    f_train, f_test, f_neg = (path / f"{name}.{s}" for s in ("train.rating", "test.rating", "test.negative"))
    for f in (f_test, f_neg):
        if not f.exists():
            raise DataError(f"{f.name} not found (NCF format needs train.rating, test.rating, test.negative)", path)
    train = _read_tsv(f_train, 4, ["u", "i", "r", "t"])
    test = _read_tsv(f_test, 4, ["u", "i", "r", "t"])
    negatives, neg_users = _read_negative_file(f_neg)
    all_u = np.concatenate([train["u"].to_numpy(), test["u"].to_numpy()]).astype(np.int64)
    all_i = np.concatenate([train["i"].to_numpy(), test["i"].to_numpy(), negatives.ravel()]).astype(np.int64)
    n_users, n_items = int(all_u.max()) + 1, int(all_i.max()) + 1
    tr = Interactions(train["u"].to_numpy(np.int32), train["i"].to_numpy(np.int32),
                      np.ones(len(train), np.float32), train["t"].fillna(0).to_numpy(np.int64), n_users, n_items)
    order = np.argsort(test["u"].to_numpy(), kind="stable")
    te_u = test["u"].to_numpy(np.int32)[order]
    te_i = test["i"].to_numpy(np.int32)[order]
    neg_order = np.argsort(neg_users, kind="stable")
    at = np.minimum(np.searchsorted(neg_users, te_u, sorter=neg_order), len(neg_users) - 1)
    neg_idx = np.where(neg_users[neg_order[at]] == te_u, neg_order[at], -1)
    if (neg_idx < 0).any():
        raise DataError(f"test user {int(te_u[neg_idx < 0][0])} has no line in {f_neg.name}", f_neg)
    test_part = HeldOut(te_u, te_i, negatives[neg_idx], timestamp=test["t"].fillna(0).to_numpy(np.int64)[order])
    full = _concat(tr, test_part, 1.0)
    valid = None
    if validation:
        order_tr = _latest_order(tr)
        counts = np.bincount(tr.user, minlength=n_users)
        ends = np.cumsum(counts)
        vusers = np.nonzero(counts >= 2)[0]
        vrows = order_tr[ends[vusers] - 1]
        keep = np.ones(len(tr), dtype=bool)
        keep[vrows] = False
        keys = positive_keys(full.user, full.item, n_items)
        vneg = sample_negatives(vusers, negatives.shape[1], keys, n_items, np.random.default_rng(DEFAULT_SEED))
        valid = HeldOut(vusers.astype(np.int32), tr.item[vrows], vneg, timestamp=tr.timestamp[vrows],
                        rating=tr.rating[vrows])
        tr = tr.subset(keep)
    split = Split("loo", tr, valid, test_part, DEFAULT_SEED,
                  {"source": "ncf-files", "evaluated_users": len(te_u), "negatives": int(negatives.shape[1])})
    users = IdMap(np.arange(n_users, dtype=np.int64), "user")
    items = IdMap(np.arange(n_items, dtype=np.int64), "movie")
    return Dataset(name, full, users, items, None, split, str(path))


def _read_negative_file(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Parse ``NAME.test.negative``: "(user,item)" then tab-separated item ids on every line.

    Returns negatives int32 [n_lines, n_neg] and the line users int64 [n_lines].
    """
    import pyarrow.csv as pacsv

    raw = path.read_bytes().replace(b"(", b"").replace(b")", b"").replace(b",", b"\t")
    try:
        table = pacsv.read_csv(
            pa.BufferReader(raw),
            read_options=pacsv.ReadOptions(autogenerate_column_names=True),
            parse_options=pacsv.ParseOptions(delimiter="\t", quote_char=False),
        )
    except pa.ArrowInvalid as e:
        raise DataError(f"malformed negative file ({str(e).splitlines()[0]})", path) from e
    cols = [c.to_numpy(zero_copy_only=False) for c in table.columns]
    if len(cols) < 3 or any(c.dtype.kind not in "iu" for c in cols):
        raise DataError("expected '(user,item)' then tab-separated integer item ids on every line", path)
    return np.stack(cols[2:], axis=1).astype(np.int32), cols[0].astype(np.int64)


def make_split(dataset: Dataset, protocol: str = "loo", seed: int = DEFAULT_SEED) -> Split:
    """The split a dataset is evaluated on: its predefined one if it has one, else ``protocol``."""
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise MovieRecError(f"seed {seed!r}: must be an integer of 0 or more")
    if dataset.predefined_split is not None and protocol == "loo":
        return dataset.predefined_split  # type: ignore[return-value]
    if protocol == "loo":
        try:
            return leave_one_out(dataset.interactions, seed=seed)
        except NotEnoughNegativesError as e:
            raw = int(dataset.users.raw(e.user))
            raise MovieRecError(
                f"{dataset.name}: user {raw} has only {e.free} unrated movies of {e.n_items}, too few for the "
                f"{e.n} sampled negatives per user of the leave-one-out split; use a larger data set") from None
    if protocol == "vae-cf":
        return vae_cf(dataset.interactions, seed=seed)
    if protocol == "cold-items":
        return cold_items(dataset.interactions, seed=seed)
    raise ValueError(f"unknown split protocol {protocol!r} (expected 'loo', 'vae-cf' or 'cold-items')")


def write_split_parquet(split: Split, out_dir: str | Path, users: IdMap, items: IdMap) -> list[Path]:
    """Parquet copies of the split with raw ids: train/valid/test (userId, movieId[, rating, timestamp])."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    tr = split.train
    frames = {"train": pa.table({"userId": users.raw(tr.user), "movieId": items.raw(tr.item),
                                 "rating": tr.rating, "timestamp": tr.timestamp})}
    for name in ("valid", "test"):
        part = split.valid if name == "valid" else split.test
        if part is None:
            continue
        cols = {"userId": users.raw(part.user), "movieId": items.raw(part.item)}
        if part.negatives is not None:
            cols["negatives"] = pa.array(list(items.raw(part.negatives)))
        frames[name] = pa.table(cols)
    for name, table in frames.items():
        sink = pa.BufferOutputStream()
        pq.write_table(table, sink)
        written.append(atomic_write_bytes(out / f"{name}.parquet", sink.getvalue().to_pybytes()))
    return written
