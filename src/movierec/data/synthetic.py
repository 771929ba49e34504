"""Synthetic MovieLens data at any scale, in ml-20m's csv format (ratings.csv, movies.csv, tags.csv).

User activity and item popularity follow power laws (a Zipf-like popularity curve, Pareto-distributed
user activity with a floor), each (user, movie) pair occurs at most once, ratings are half-stars in
0.5..5.0 driven by item quality, user bias and a low-rank taste term, and timestamps fall inside each
user's active period and after the movie's release. Everything is vectorised numpy; users are generated
in blocks (about two million ratings each) and streamed to disk with ``pyarrow.csv``, so 20M ratings take
a few tens of seconds and well under 3 GB of memory. The output is deterministic for a given seed and
loads with ``movierec.data.load_dataset(path)``.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

GENRES = (
    "Action", "Adventure", "Animation", "Children", "Comedy", "Crime", "Documentary", "Drama", "Fantasy",
    "Film-Noir", "Horror", "IMAX", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller", "War", "Western",
)
# relative genre frequencies, roughly those of ml-20m's catalogue
_GENRE_WEIGHTS = np.array(
    [3.5, 2.3, 1.0, 1.1, 8.4, 2.9, 2.5, 13.3, 1.4, 0.3, 2.6, 0.2, 1.0, 1.5, 4.1, 1.7, 4.2, 1.2, 0.7]
)
_TAGS = (
    "atmospheric", "funny", "twist ending", "based on a book", "dark comedy", "visually appealing",
    "thought-provoking", "classic", "sci-fi", "surreal", "violence", "quirky", "romance", "stylized",
    "dystopia", "great soundtrack", "cult film", "mindfuck", "social commentary", "psychology",
    "dark, moody", "Oscar (Best Picture)", "time travel", "comedy", "action", "superhero", "BD-R",
    "nudity (topless)", "religion", "music", "philosophy", "animation", "space", "heist", "drugs",
)
_T0 = 789_652_009  # 1995-01-09, MovieLens's first rating
_T1 = 1_427_784_002  # 2015-03-31, ml-20m's last
_DAY = 86_400
_RATING_TEXT = pa.array([f"{k / 2:.1f}" for k in range(1, 11)])  # "0.5" .. "5.0"
_BLOCK = 2_000_000  # ratings per generation block


def _write_header(f: object, columns: list[str]) -> None:
    f.write((",".join(columns) + "\n").encode())  # type: ignore[attr-defined]


def _write_rows(f: object, table: pa.Table, quoting: str) -> None:
    pacsv.write_csv(table, f, pacsv.WriteOptions(include_header=False, quoting_style=quoting))


def _user_counts(rng: np.random.Generator, n_users: int, n_items: int, n_ratings: int) -> np.ndarray:
    """Ratings per user (int64 [n_users]): a floor plus a Pareto(1.2)-shaped share of the rest."""
    cap = max(1, int(n_items * 0.6))
    floor = int(np.clip(n_ratings // (3 * n_users), 1, 20))
    floor = min(floor, cap)
    w = (1.0 - rng.random(n_users)) ** (-1.0 / 1.2) - 1.0  # Lomax: many light users
    extra = max(n_ratings - floor * n_users, 0)
    counts = floor + np.floor(extra * w / w.sum()).astype(np.int64)
    for _ in range(4):  # hand what the cap removed to the users below it
        over = np.maximum(counts - cap, 0).sum()
        counts = np.minimum(counts, cap)
        share = w * (counts < cap)
        if over == 0 or share.sum() == 0:
            break
        counts += np.floor(over * share / share.sum()).astype(np.int64)
    short = n_ratings - int(counts.sum())  # rounding losses: one more rating for some users with room
    room_users = np.flatnonzero(counts < cap)
    if short > 0 and len(room_users):
        counts[rng.choice(room_users, size=min(short, len(room_users)), replace=False)] += 1
    return counts


def _sorted_unique(x: np.ndarray) -> np.ndarray:
    """Sorted distinct values (sort-based: much faster than np.unique's hashing on big int64 keys)."""
    x = np.sort(x)
    return x[np.concatenate([[True], x[1:] != x[:-1]])] if len(x) else x


def _sample_pairs(
    rng: np.random.Generator, users: np.ndarray, counts: np.ndarray, cdf: np.ndarray, n_items: int
) -> np.ndarray:
    """Distinct keys user * n_items + item (int64, sorted) with ``counts[k]`` items for ``users[k]``.

    Items are drawn from the popularity ``cdf``; duplicates are dropped and topped up with fresh draws
    (mixing in uniform draws so that heavy users finish).
    """
    u = np.repeat(users, counts)
    keys = _sorted_unique(u * n_items + np.searchsorted(cdf, rng.random(len(u)), side="right"))
    first = int(users[0])
    for rnd in range(12):
        have = np.bincount(keys // n_items - first, minlength=len(users))[users - first]
        missing = counts - have
        if missing.sum() == 0:
            break
        u = np.repeat(users, np.maximum(missing, 0) * (1 + rnd // 3))
        uniform = rng.random(len(u)) < min(0.2 * (rnd + 1), 1.0)
        items = np.where(
            uniform, rng.integers(0, n_items, len(u)), np.searchsorted(cdf, rng.random(len(u)), side="right")
        )
        cand = _sorted_unique(u * n_items + items)
        pos = np.minimum(np.searchsorted(keys, cand), len(keys) - 1)
        new = cand[keys[pos] != cand]  # drop pairs we already have
        # keep at most `missing` new items per user (the first ones after a shuffle)
        new = rng.permutation(new)
        nu = new // n_items - first
        order = np.argsort(nu, kind="stable")
        new, nu = new[order], nu[order]
        starts = np.searchsorted(nu, np.arange(len(users)))
        rank = np.arange(len(new)) - starts[nu]
        lim = np.zeros(int(users[-1]) - first + 1, np.int64)
        lim[users - first] = np.maximum(missing, 0)
        keys = np.sort(np.concatenate([keys, new[rank < lim[nu]]]))  # disjoint, so no re-dedupe
    return keys


def _movies(rng: np.random.Generator, n_items: int) -> tuple[pa.Table, np.ndarray]:
    """movies table (movieId, title, genres) and release timestamps (int64 [n_items])."""
    movie_ids = np.sort(rng.choice(np.arange(1, int(n_items * 1.25) + 2), size=n_items, replace=False))
    years = np.clip(2015 - np.floor(rng.exponential(16.0, n_items)), 1902, 2015).astype(np.int64)
    release_ts = ((years - 1970) * 365.25 * _DAY).astype(np.int64)
    ids = pa.array(movie_ids.astype(np.int64)).cast(pa.string())
    kind = rng.random(n_items)
    stem = pc.binary_join_element_wise("Synthetic Movie ", ids, "")
    stem = pc.if_else(pa.array(kind < 0.08), pc.binary_join_element_wise(stem, ", The", ""), stem)
    with_year = pc.binary_join_element_wise(stem, " (", pa.array(years).cast(pa.string()), ")", "")
    title = pc.if_else(pa.array(kind > 0.99), stem, with_year)  # ~1% have no year, like "Babylon 5"
    # 1-3 genres per movie, without replacement, by the Gumbel top-k trick; listed alphabetically
    k = rng.choice([1, 2, 3], size=n_items, p=[0.4, 0.35, 0.25])
    logits = np.log(_GENRE_WEIGHTS)[None, :] + rng.gumbel(size=(n_items, len(GENRES)))
    top = np.argsort(-logits, axis=1)[:, :3]
    chosen = np.zeros((n_items, len(GENRES)), bool)
    rows = np.repeat(np.arange(n_items), 3)
    keep = (np.tile(np.arange(3), n_items) < np.repeat(k, 3))
    chosen[rows[keep], top.ravel()[keep]] = True
    r, c = np.nonzero(chosen)  # row-major: genres in alphabetical order within each movie
    offsets = np.concatenate([[0], np.cumsum(np.bincount(r, minlength=n_items))]).astype(np.int32)
    genre_lists = pa.ListArray.from_arrays(pa.array(offsets), pa.array(np.asarray(GENRES, dtype=object)[c]))
    genres = pc.binary_join(genre_lists, "|")
    table = pa.table({"movieId": pa.array(movie_ids.astype(np.int64)), "title": title, "genres": genres})
    return table, release_ts


def write_synthetic(
    out_dir: str | Path, n_users: int, n_items: int, n_ratings: int, seed: int = 0, n_tags: int | None = None
) -> Path:
    """Write ratings.csv, movies.csv and tags.csv (ml-20m format) into ``out_dir``; returns the folder.

    About ``n_ratings`` distinct (user, movie) ratings (fewer only when users cannot find enough new
    movies) by users 1..``n_users`` over ``n_items`` movies with sparse ids; ``n_tags`` tag applications
    (default: one per 40 ratings). Deterministic for a given ``seed``.
    """
    if n_users < 1 or n_items < 1 or n_ratings < 1:
        raise ValueError("n_users, n_items and n_ratings must be positive")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    n_tags = n_ratings // 40 if n_tags is None else n_tags

    movies, release_ts = _movies(rng, n_items)
    movie_ids = movies.column("movieId").to_numpy()

    # popularity: Zipf-like over a random order of the movies
    rank = rng.permutation(n_items)
    pop = (rank + 10.0) ** -1.1
    cdf = np.cumsum(pop / pop.sum())
    cdf[-1] = 1.0
    log_pop = np.log(pop)
    quality = 0.45 * (log_pop - log_pop.mean()) / (log_pop.std() + 1e-9) + 0.9 * rng.standard_normal(n_items)
    dim = 8
    item_f = rng.standard_normal((n_items, dim)).astype(np.float32) / np.sqrt(dim)

    counts = _user_counts(rng, n_users, n_items, n_ratings)
    user_bias = 0.35 * rng.standard_normal(n_users)
    user_f = rng.standard_normal((n_users, dim)).astype(np.float32)
    start = rng.uniform(_T0, _T1 - _DAY, n_users)
    span = np.where(rng.random(n_users) < 0.4, rng.uniform(600, _DAY, n_users),
                    rng.lognormal(np.log(120 * _DAY), 1.4, n_users))
    span = np.minimum(span, _T1 - start)

    cum = np.cumsum(counts)
    bounds = np.searchsorted(cum, np.arange(_BLOCK, int(cum[-1]) + _BLOCK, _BLOCK), side="left") + 1
    edges = np.unique(np.concatenate([[0], np.minimum(bounds, n_users), [n_users]]))
    tag_parts: list[pa.Table] = []
    total = int(counts.sum())

    with open(out / "ratings.csv", "wb") as f:
        _write_header(f, ["userId", "movieId", "rating", "timestamp"])
        for lo, hi in itertools.pairwise(edges.tolist()):
            users = np.arange(lo, hi, dtype=np.int64)
            keys = _sample_pairs(rng, users, counts[lo:hi], cdf, n_items)
            u, i = keys // n_items, keys % n_items
            n = len(keys)
            x = (3.25 + 0.5 * quality[i] + user_bias[u]
                 + 0.4 * np.einsum("nd,nd->n", user_f[u], item_f[i]) + 0.55 * rng.standard_normal(n))
            whole = rng.random(n) < 0.6  # whole stars are more common than half stars
            r = np.where(whole, np.round(x), np.round(2 * x) / 2)
            r = np.clip(r, np.where(whole, 1.0, 0.5), 5.0)
            t = start[u] + span[u] * rng.random(n)
            t = np.maximum(t, release_ts[i] + rng.uniform(0, 60 * _DAY, n))
            t = np.minimum(t, _T1).astype(np.int64)
            codes = pa.array((np.round(r * 2) - 1).astype(np.int32))
            table = pa.table({
                "userId": pa.array(u + 1), "movieId": pa.array(movie_ids[i]),
                "rating": _RATING_TEXT.take(codes), "timestamp": pa.array(t),
            })
            _write_rows(f, table, "none")
            k = round(n_tags * n / max(total, 1))
            if k and n:
                pick = rng.integers(0, n, k)
                vocab_w = 1.0 / (np.arange(len(_TAGS)) + 2.0)
                tag = rng.choice(len(_TAGS), size=k, p=vocab_w / vocab_w.sum())
                tag_parts.append(pa.table({
                    "userId": pa.array(u[pick] + 1), "movieId": pa.array(movie_ids[i[pick]]),
                    "tag": pa.array(np.asarray(_TAGS, dtype=object)[tag], pa.string()),
                    "timestamp": pa.array(t[pick] + rng.integers(0, 3600, k)),
                }))

    with open(out / "movies.csv", "wb") as f:
        _write_header(f, ["movieId", "title", "genres"])
        _write_rows(f, movies, "needed")
    with open(out / "tags.csv", "wb") as f:
        _write_header(f, ["userId", "movieId", "tag", "timestamp"])
        if tag_parts:
            tags = pa.concat_tables(tag_parts)
            tags = tags.take(pc.sort_indices(tags, [("userId", "ascending"), ("movieId", "ascending")]))
            _write_rows(f, tags, "needed")
    return out


__all__ = ["GENRES", "write_synthetic"]
