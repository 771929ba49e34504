"""How a run uses a GPU (gpu_batch_factor, amp) is the run's, not a model setting: RunSpec.hardware, RunContext,
the run's key; the model class gives the defaults."""

from __future__ import annotations

import pytest
import torch

from movierec.errors import MovieRecError
from movierec.models import build_model, validate_settings
from movierec.models.base import RunContext
from movierec.models.ncf import GMF
from movierec.models.sasrec import SASRec
from movierec.models.vae import MultVAE
from movierec.runs import expand_runs
from movierec.runs.folders import parse_overrides
from movierec.runs.store import run_key
from movierec.training import Hardware, TrainerSettings, effective_batch_and_lr


def test_a_runs_hardware_keys_go_to_the_run_not_the_model() -> None:
    config = {"defaults": {"amp": False, "epochs": 2},
              "run": [{"name": "g", "model": "gmf", "gpu_batch_factor": 4}, {"name": "k", "model": "itemknn"}]}
    g, k = expand_runs(config)
    assert g.settings == {"epochs": 2} and g.hardware == {"amp": False, "gpu_batch_factor": 4}
    assert k.settings == {} and k.hardware == {"amp": False}
    over = expand_runs({"run": [{"name": "g", "model": "gmf", "gpu_batch_factor": 4}]}, {"gpu_batch_factor": "8"})
    assert over[0].hardware == {"gpu_batch_factor": 8}  # --set wins, converted
    with pytest.raises(MovieRecError, match=r"run 'g': gpu_batch_factor = 0 is invalid: .*greater than or equal"):
        expand_runs({"run": [{"name": "g", "model": "gmf", "gpu_batch_factor": 0}]})


def test_the_run_key_names_hardware_only_when_a_run_gives_it() -> None:
    plain, fast = expand_runs({"run": [{"name": "a", "model": "gmf"},
                                       {"name": "b", "model": "gmf", "gpu_batch_factor": 2}]})
    assert "hardware" not in run_key(plain, {}) and run_key(fast, {})["hardware"] == {"gpu_batch_factor": 2}
    assert "gpu_batch_factor" not in run_key(plain, {})["config"]


def test_train_set_takes_hardware_keys_and_a_model_refuses_them() -> None:
    assert parse_overrides("gmf", ["gpu_batch_factor=2", "amp=no", "factors=8"]) == {
        "factors": 8, "gpu_batch_factor": 2, "amp": False}
    with pytest.raises(MovieRecError, match="gpu_batch_factor is how a run uses a GPU, not a setting of neumf"):
        validate_settings("hybrid-blend", {"a": "neumf", "a_settings": {"gpu_batch_factor": 4}})


def test_the_models_defaults_and_the_runs_override() -> None:
    assert GMF.hardware == Hardware(16, True) and SASRec.hardware == Hardware(4, True)
    assert MultVAE.hardware == Hardware(1, False)
    assert RunContext().hardware(GMF.hardware) == Hardware(16, True)
    ctx = RunContext(gpu_batch_factor=2, amp=False)
    assert ctx.hardware(GMF.hardware) == Hardware(2, False) and ctx.for_part().hardware(SASRec.hardware) == \
        Hardware(2, False)
    cfg = TrainerSettings(batch_size=100, lr=0.01)
    assert effective_batch_and_lr(cfg, torch.device("cpu"), Hardware(16)) == (100, 0.01)  # ignored on a CPU
    batch, lr = effective_batch_and_lr(cfg, torch.device("cuda"), Hardware(4))
    assert batch == 400 and lr == pytest.approx(0.02)
    assert "gpu_batch_factor" not in build_model("gmf").config_dict()
