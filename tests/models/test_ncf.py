"""GMF, MLP and NeuMF through the shared contract, with short training so the suite stays fast."""

from movierec.models import GMF, MLP, NeuMF
from tests.models.quality import QualityFloor


def _fast(cls, **kw):
    def factory():
        return cls(epochs=3, batch_size=2048, lr=0.005, patience=0, **kw)

    return factory


class TestGMF(QualityFloor):
    model_factory = staticmethod(_fast(GMF, factors=16))
    min_sampled_hr10 = 0.55
    min_full_ndcg10 = 0.01


class TestMLP(QualityFloor):
    model_factory = staticmethod(_fast(MLP, embedding_dim=16, layers=3))
    min_sampled_hr10 = 0.5
    min_full_ndcg10 = 0.005  # 3 epochs only (sanity floor; trained to convergence it reaches about 0.02)


class TestNeuMF(QualityFloor):
    model_factory = staticmethod(_fast(NeuMF, factors=8, layers=3))
    min_sampled_hr10 = 0.55
    min_full_ndcg10 = 0.01


def test_numpy_engine_scores_like_the_torch_networks(mls_split, tmp_path) -> None:
    import numpy as np

    from movierec.artifacts import load_bundle, save_bundle
    from movierec.models.ncf_numpy import NumpyNCF

    for model in (GMF(factors=8, epochs=1, patience=0), MLP(embedding_dim=16, layers=3, epochs=1, patience=0),
                  MLP(embedding_dim=8, layers=0, epochs=1, patience=0), NeuMF(factors=8, epochs=1, patience=0)):
        model.fit(mls_split.train)
        path = save_bundle(tmp_path / model.name / str(getattr(model.config, "layers", 0)), model)
        fast = load_bundle(path, engine="fast").model
        assert isinstance(fast, NumpyNCF)
        users = np.arange(7)
        assert np.allclose(fast.score(users), model.score(users), atol=1e-4)
        cand = mls_split.test.negatives[:7]
        assert np.allclose(fast.score(users, cand), model.score(users, cand), atol=1e-4)
        assert (fast.recommend(users, 10)[0] == model.recommend(users, 10)[0]).all()
