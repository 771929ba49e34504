"""Models describe themselves: the registry, declared settings and their one validation path."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from movierec.errors import MovieRecError
from movierec.models import ENTRIES, REGISTRY, build_model, family_of, model_entry, validate_settings
from movierec.runs import expand_runs


def test_every_entry_loads_its_class_and_describes_every_setting() -> None:
    for entry in ENTRIES:
        cls = entry.load()
        assert cls.name == entry.name
        for s in entry.settings():
            assert s.help, (entry.name, s.name)
    assert family_of("neumf") == "collaborative" and family_of("hybrid-blend") == "hybrid"
    assert model_entry("neumf").combines == ("gmf", "mlp")


@pytest.mark.parametrize(("values", "message"), [
    ({"epoch": 3}, "unknown setting 'epoch'; did you mean 'epochs'?"),
    ({"epochs": 0}, r"epochs = 0 is invalid: .*greater than or equal to 1"),
    ({"factors": -3}, r"factors = -3 is invalid"),
    ({"lr": "abc"}, r"lr = 'abc' is invalid: .*valid number"),
    ({"batch_size": 2.5}, r"batch_size = 2.5 is invalid"),
])
def test_bad_settings_are_one_line_errors(values, message) -> None:
    with pytest.raises(MovieRecError, match=message):
        validate_settings("gmf", values)


def test_strings_from_the_command_line_become_typed_values() -> None:
    assert validate_settings("gmf", {"epochs": "3", "lr": "0.01", "compile": "no"}) == {"epochs": 3, "lr": 0.01,
                                                                                       "compile": False}
    assert validate_settings("content", {"measure": "dot"}) == {"measure": "dot"}
    with pytest.raises(MovieRecError, match="measure = 'manhattan' is invalid"):
        validate_settings("content", {"measure": "manhattan"})


def test_a_hybrids_part_settings_are_checked_against_the_part() -> None:
    with pytest.raises(MovieRecError, match=r"a_settings, itemknn.*unknown setting 'factors'"):
        validate_settings("hybrid-blend", {"a": "itemknn", "a_settings": {"factors": 8}})
    m = build_model("hybrid-blend", {"a": "itemknn", "a_settings": {"k": "20"}})
    assert m.config.a_settings == {"k": 20}
    with pytest.raises(MovieRecError, match="did you mean 'gmf'"):
        model_entry("gmx")


def test_experiment_configs_are_validated_before_any_work() -> None:
    base = {"run": [{"name": "g", "model": "gmf"}]}
    with pytest.raises(MovieRecError, match=r"\[defaults\]: unknown setting .*'epoch'; did you mean 'epochs'"):
        expand_runs({**base, "defaults": {"epoch": 2}})
    with pytest.raises(MovieRecError, match=r"run 'g': epochs = 0 is invalid"):
        expand_runs({**base, "defaults": {"epochs": 0}})
    specs = expand_runs({"run": [{"name": "k", "model": "itemknn"}], "defaults": {"epochs": 2}})
    assert specs[0].settings == {}  # a default the model does not have is not forced on it


def test_models_command_lists_the_registry(tmp_path) -> None:
    out = subprocess.run([sys.executable, "-m", "movierec", "models", "--json"], capture_output=True, text=True,
                         check=True)
    listed = json.loads(out.stdout)
    assert [m["name"] for m in listed] == list(REGISTRY)
    gmf = next(m for m in listed if m["name"] == "gmf")
    assert gmf["user_vectors"] and {"name": "factors", "part": "model", "type": "int", "default": 64,
                                    "allowed": ">= 1", "help": "embedding size (predictive factors)"} in gmf["settings"]
    help_text = subprocess.run([sys.executable, "-m", "movierec", "train", "--help"], capture_output=True,
                               text=True, check=True, env={"COLUMNS": "200", "PATH": ""}).stdout
    assert all(name in help_text for name in REGISTRY)
    bad = subprocess.run([sys.executable, "-m", "movierec", "models", "gnf"], capture_output=True, text=True)
    assert bad.returncode == 2 and "did you mean 'gmf'" in bad.stderr


_RUN = {"run": [{"name": "P", "model": "popularity"}]}


@pytest.mark.parametrize(("kind", "config", "message"), [
    ("study", {"studdy": {"seed": 3}}, r"unknown section 'studdy'; did you mean 'study'"),
    ("study", {"study": {"seeds": 3}, **_RUN}, r"\[study\]: unknown setting 'seeds'; did you mean 'seed'"),
    ("study", {"study": {"seed": -1}, **_RUN}, r"\[study\]: seed = -1 is invalid"),
    ("study", {"study": {"split": "lo"}, **_RUN}, r"split = 'lo' is invalid"),
    ("study", {"study": {"save_models": "maybe"}, **_RUN}, r"save_models = 'maybe' is invalid"),
    ("study", {"run": [{"name": "G"}]}, r"\[\[run\]\] number 1 \('G'\) names no model"),
    ("study", {"run": [{"name": "G", "model": "gmf", "factors": 0}]}, r"run 'G': factors = 0 is invalid"),
    ("experiment", {"experiment": {"ks": [0]}, **_RUN}, r"\[experiment\]: ks.0 = 0 is invalid"),
    ("experiment", {"study": {}, **_RUN}, r"unknown section 'study'"),
])
def test_study_and_experiment_configs_are_checked_key_by_key(kind, config, message) -> None:
    from movierec.runs import validate_config

    with pytest.raises(MovieRecError, match=message):
        validate_config(config, kind)


def test_the_shipped_configs_are_valid() -> None:
    from pathlib import Path

    from movierec.experiments import load_config
    from movierec.runs import validate_config
    from movierec.study import default_config

    validate_config(default_config(), "study")
    for path in sorted((Path(__file__).resolve().parents[2] / "configs").glob("*.toml")):
        cfg = load_config(path)
        validate_config(cfg, "study" if "study" in cfg else "experiment", path.name)


def test_a_setting_that_nothing_reads_fails_the_contract() -> None:
    from movierec.models.itemknn import ItemKNN, ItemKNNSettings
    from movierec.models.settings import setting
    from movierec.testing import ModelContract

    class Forgetful(ItemKNNSettings):
        forgotten: int = setting(1, "a setting no code reads", ge=0)

    class Sloppy(ItemKNN):
        config_class = Forgetful

    class SloppyContract(ModelContract):
        model_factory = Sloppy

    with pytest.raises(AssertionError, match=r"declares settings that nothing reads: \['forgotten'\]"):
        SloppyContract().test_every_setting_is_read()


def test_a_setting_name_is_unique_across_a_models_parts() -> None:
    from movierec.models.settings import Settings, part, setting
    from movierec.training import TrainerSettings

    with pytest.raises(TypeError, match="setting 'epochs' is in two parts"):
        class Clash(Settings):
            train: TrainerSettings = part(TrainerSettings)
            epochs: int = setting(3, "epochs again")
