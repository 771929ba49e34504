"""The model registry: one line per model class.

An entry names the model (as ``movierec train NAME`` and bundles spell it), where its class lives (imported
only when needed, so listing models does not import torch), its family, a one-line summary, and the models
it combines (for the study's generated comparisons). Settings come from the class's settings model
(:mod:`movierec.models.settings`). Adding a model: write its module, add one line to ``ENTRIES``.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from movierec.errors import MovieRecError

if TYPE_CHECKING:
    from movierec.models.base import Recommender
    from movierec.models.settings import SettingInfo

FAMILIES = ("baseline", "collaborative", "content", "hybrid", "autoencoder", "sequential")


@dataclass(frozen=True)
class ModelEntry:
    name: str
    target: str  # "module:Class"
    family: str  # one of FAMILIES
    summary: str
    combines: tuple[str, ...] = ()  # models this one is built from (NeuMF: GMF and MLP)

    def load(self) -> type[Recommender]:
        module, cls = self.target.split(":")
        return getattr(importlib.import_module(module), cls)

    def settings(self) -> list[SettingInfo]:
        from movierec.models.settings import describe

        return describe(self.load().config_class)

    def hardware(self) -> dict[str, Any] | None:
        """How the model uses a GPU unless a run says otherwise (None: it trains no network)."""
        hardware = getattr(self.load(), "hardware", None)
        return None if hardware is None else {"gpu_batch_factor": hardware.gpu_batch_factor, "amp": hardware.amp}

    def to_json(self) -> dict[str, Any]:
        cls = self.load()
        return {"name": self.name, "family": self.family, "summary": self.summary, "class": self.target,
                "combines": list(self.combines), "user_vectors": cls.has_user_vectors,
                "item_vectors": cls.has_item_vectors,
                "settings": [s.to_json() for s in self.settings()], "hardware": self.hardware()}


ENTRIES = (
    ModelEntry("popularity", "movierec.models.popularity:Popularity", "baseline",
               "Most-rated movies first, the same list for everyone"),
    ModelEntry("itemknn", "movierec.models.itemknn:ItemKNN", "collaborative",
               "Item-item cosine neighbours on the binary rating matrix"),
    ModelEntry("gmf", "movierec.models.ncf:GMF", "collaborative",
               "NCF's generalized matrix factorisation (He et al. 2017)"),
    ModelEntry("mlp", "movierec.models.ncf:MLP", "collaborative",
               "NCF's MLP tower over user and item embeddings"),
    ModelEntry("neumf", "movierec.models.ncf:NeuMF", "collaborative",
               "NCF's NeuMF: GMF and an MLP tower under one output layer", combines=("gmf", "mlp")),
    ModelEntry("ease", "movierec.models.ease:EASE", "collaborative",
               "EASE (Steck 2019): closed-form item-item weights, L2 weight tuned on validation"),
    ModelEntry("ials", "movierec.models.ials:IALS", "collaborative",
               "Implicit ALS (Hu et al. 2008), solved by `implicit`, tuned as Rendle et al. 2021 advise"),
    ModelEntry("multvae", "movierec.models.vae:MultVAE", "autoencoder",
               "Mult-VAE (Liang et al. 2018): variational autoencoder of a user's row, multinomial likelihood"),
    ModelEntry("multdae", "movierec.models.vae:MultDAE", "autoencoder",
               "Mult-DAE (Liang et al. 2018): denoising autoencoder of a user's row, multinomial likelihood"),
    ModelEntry("sasrec", "movierec.models.sasrec:SASRec", "sequential",
               "SASRec (Kang and McAuley 2018): causal self-attention over a user's time-ordered history"),
    ModelEntry("gru4rec", "movierec.models.gru4rec:GRU4Rec", "sequential",
               "GRU4Rec (Hidasi et al. 2016): a recurrent network over a user's time-ordered history"),
    ModelEntry("content", "movierec.models.content:ContentRecommender", "content",
               "User profile in genre/tag/genome space matched by dot, cosine or Euclidean similarity"),
    ModelEntry("content-neural", "movierec.models.content_neural:ContentNeural", "content",
               "Two-tower network: user embedding against an MLP over movie content"),
    ModelEntry("neumf-features", "movierec.models.content_neural:NeuMFFeatures", "hybrid",
               "NeuMF whose MLP tower also sees the movie's content features", combines=("neumf",)),
    ModelEntry("hybrid-blend", "movierec.models.hybrid:HybridBlend", "hybrid",
               "Weighted blend of two models' standardised scores, weight tuned on validation"),
    ModelEntry("hybrid-switch", "movierec.models.hybrid:HybridSwitch", "hybrid",
               "One model for users with little history, another for the rest"),
)
REGISTRY: dict[str, ModelEntry] = {e.name: e for e in ENTRIES}


def model_entry(name: str) -> ModelEntry:
    """The entry registered under ``name``; a one-line error naming the closest known model otherwise."""
    entry = REGISTRY.get(name.lower())
    if entry is None:
        from movierec.models.settings import closest

        near = closest(name.lower(), REGISTRY)
        hint = f"; did you mean {near!r}?" if near else ""
        raise MovieRecError(f"unknown model {name!r}{hint} (known models: {', '.join(REGISTRY)})")
    return entry


def get_model_class(name: str) -> type[Recommender]:
    """The model class registered under ``name`` (as used by ``movierec train NAME``)."""
    return model_entry(name).load()


def validate_settings(name: str, values: dict[str, Any], where: str | None = None, cross: bool = True
                      ) -> dict[str, Any]:
    """Settings for model ``name`` checked for names, types and ranges (a hybrid's part settings too), and,
    with ``cross``, against each other with the defaults filling the rest (the settings' model validators)."""
    import pydantic

    from movierec.models.settings import HARDWARE_KEYS, validate

    cls = get_model_class(name)
    where = where or name
    run_keys = [k for k in HARDWARE_KEYS if k in values]
    if run_keys:
        raise MovieRecError(f"{where}: {run_keys[0]} is how a run uses a GPU, not a setting of {name}: give it to "
                            "the run (train --set, or a key of the [[run]] table beside model)")
    checked = validate(cls.config_class, values, where)
    try:  # checks across settings are the settings class's validators (e.g. SASRec: heads must divide dim)
        if cross:
            cls.config_class.from_flat({k: v for k, v in checked.items() if not k.endswith("_settings")})
    except pydantic.ValidationError as e:
        raise MovieRecError(f"{where}: {e.errors()[0]['msg'].removeprefix('Value error, ')}") from None
    for part in ("a", "b"):  # a two-model hybrid: its parts' settings are checked against the part's model
        key = f"{part}_settings"
        if key in checked:
            part_name = checked.get(part) or cls.config_class().flat()[part]
            checked[key] = validate_settings(part_name, dict(checked[key]), f"{where} ({key}, {part_name})")
    return checked


def build_model(name: str, settings: dict[str, Any] | None = None, where: str | None = None) -> Recommender:
    """A new, unfitted model from its registry name and validated settings."""
    return get_model_class(name)(**validate_settings(name, settings or {}, where))


def family_of(name: str) -> str:
    entry = REGISTRY.get(name)
    return entry.family if entry is not None else "other"
