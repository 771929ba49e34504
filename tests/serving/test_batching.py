"""Opportunistic batching (movierec.serving.batching) and a served model's answers in batches: each person's
answer is the one they get alone."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from movierec.serving.batching import Batcher


def _threads(batcher: Batcher, values: list, out: dict) -> list[threading.Thread]:
    def call(v):
        try:
            out[v] = batcher(v)
        except Exception as e:  # the test reads each call's own error
            out[v] = e

    threads = [threading.Thread(target=call, args=(v,)) for v in values]
    for t in threads:
        t.start()
    return threads


def test_a_call_alone_runs_at_once_and_calls_that_wait_run_together() -> None:
    release, started, seen = threading.Event(), threading.Event(), []

    def run(values):
        seen.append(list(values))
        if values == [0]:  # the first batch holds the only slot until released
            started.set()
            release.wait(5)
        return [2 * v for v in values]

    batcher = Batcher(run, slots=1)
    out: dict = {}
    first = _threads(batcher, [0], out)
    assert started.wait(5)
    rest = _threads(batcher, [1, 2, 3, 4, 5], out)
    deadline = time.time() + 5
    while len(batcher._waiting) < 5 and time.time() < deadline:
        time.sleep(0.01)
    release.set()
    for t in first + rest:
        t.join(5)
    assert out == {v: 2 * v for v in range(6)}
    assert seen[0] == [0] and sorted(seen[1]) == [1, 2, 3, 4, 5] and len(seen) == 2
    assert (batcher.batches, batcher.inputs) == (2, 6)


def test_batches_hold_at_most_max_batch_and_every_call_is_answered() -> None:
    sizes = []

    def run(values):
        sizes.append(len(values))
        time.sleep(0.002)
        return [v + 1 for v in values]

    batcher = Batcher(run, slots=2, max_batch=4)
    out: dict = {}
    for t in _threads(batcher, list(range(60)), out):
        t.join(10)
    assert out == {v: v + 1 for v in range(60)} and max(sizes) <= 4 and sum(sizes) == 60
    assert batcher._running == 0 and not batcher._waiting


def test_one_bad_input_fails_only_its_own_call() -> None:
    release, started = threading.Event(), threading.Event()

    def run(values):
        if values == [0]:
            started.set()
            release.wait(5)
        if any(v < 0 for v in values):
            raise ValueError(f"negative in {values}")
        return list(values)

    batcher = Batcher(run, slots=1)
    out: dict = {}
    threads = _threads(batcher, [0], out)
    assert started.wait(5)
    threads += _threads(batcher, [1, -1, 2], out)
    deadline = time.time() + 5
    while len(batcher._waiting) < 3 and time.time() < deadline:
        time.sleep(0.01)
    release.set()
    for t in threads:
        t.join(5)
    assert out[0] == 0 and out[1] == 1 and out[2] == 2
    assert isinstance(out[-1], ValueError) and str(out[-1]) == "negative in [-1]"


@pytest.mark.parametrize("model", ["popularity", "itemknn", "ease", "ials", "gmf", "neumf", "content", "sasrec",
                                   "multvae"])
def test_people_answered_together_get_their_own_lists(tmp_path, model: str) -> None:
    """ServedModel.recommend_histories of several people (other k, one with a single rating) against each
    person alone through the model itself: the same items, scores and reasons."""
    from movierec.data.history import History
    from movierec.serving.served import ServedModel
    from tests.serving.conftest import synthetic_run

    served = ServedModel.open(synthetic_run(tmp_path, model))
    rng = np.random.default_rng(0)
    people = [(rng.choice(served.model.n_items, n, replace=False), rng.integers(1, 11, n) / 2, k)
              for n, k in ((5, 10), (1, 3), (12, 20), (7, 10))]
    together = served.recommend_histories(people)
    for (items, ratings, k), recs in zip(people, together, strict=True):
        top, scores = served.model.recommend_history(History.of(items, ratings, np.arange(len(items))), k)
        assert np.array_equal(recs.items, top) and np.allclose(recs.scores, scores, rtol=1e-5, atol=1e-6)
        alone = served.recommend_history(items, ratings, k)
        assert np.array_equal(alone.items, recs.items) and np.array_equal(alone.because, recs.because)
