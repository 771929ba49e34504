"""GMF, MLP and NeuMF through the shared contract, with short training so the suite stays fast."""

from movierec.models import GMF, MLP, NeuMF
from tests.contract.mixin import RecommenderContract


def _fast(cls, **kw):
    def factory():
        return cls(epochs=3, batch_size=2048, lr=0.005, patience=0, **kw)

    return factory


class TestGMF(RecommenderContract):
    model_factory = staticmethod(_fast(GMF, factors=16))
    min_sampled_hr10 = 0.55
    min_full_ndcg10 = 0.01


class TestMLP(RecommenderContract):
    model_factory = staticmethod(_fast(MLP, embedding_dim=16, layers=3))
    min_sampled_hr10 = 0.5
    min_full_ndcg10 = 0.01


class TestNeuMF(RecommenderContract):
    model_factory = staticmethod(_fast(NeuMF, factors=8, layers=3))
    min_sampled_hr10 = 0.55
    min_full_ndcg10 = 0.01
