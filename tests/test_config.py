"""Presets, profiles, stable hashes and the dependency lists."""

from __future__ import annotations

import dataclasses
import math
import re
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib
import yaml

from cellcutter_nb import config

ROOT = Path(__file__).resolve().parents[1]


def test_paper_constants():
    p = config.get_preset("paper")
    assert (p.lam, p.log_base, p.beta, p.learning_rate) == (3.32, 10.0, 15.0, 0.005)
    assert (p.patch_size, p.area_size, p.position_sigma) == (64, 640, 15.0)
    assert config.PAIRING_DISTANCE_UM == 15.0 and config.PIXEL_SIZE_UM == 0.8
    # Eq. 3: λ = 3.32 balances the area term for log base 10, i.e. 1/log10(2)
    assert p.lam == pytest.approx(1 / math.log10(2), abs=0.01)
    assert p.lam_natural == pytest.approx(3.32 / math.log(10))


def test_original_code_preset_differs_as_documented():
    o = config.get_preset("original_code")
    assert o.lam == 1.0 and o.log_base == pytest.approx(math.e)
    assert o.learning_rate == 0.001 and o.augment == "flips"
    assert o.blob_method == "doh" and o.graph_cut_pairwise == "contrast"
    assert o.drop_border_patches and not config.get_preset("paper").drop_border_patches


def test_profiles_scale_up():
    s, q, f = (config.get_profile(n) for n in ("smoke", "quick", "full"))
    assert s.field_size < q.field_size < f.field_size == 1750
    assert f.unet_width == 32 and f.unet_depth == 4
    assert s.max_epochs * s.steps_per_epoch < q.max_epochs * q.steps_per_epoch


def test_frozen_and_hash_stable():
    p = config.get_preset("paper")
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.lam = 1.0  # type: ignore[misc]
    h = config.config_hash(p)
    assert re.fullmatch(r"[0-9a-f]{16}", h)
    assert config.config_hash(p.replace(lam=3.32)) == h
    assert config.config_hash(p.replace(lam=3.0)) != h
    # the same in a fresh interpreter (no dependence on hash randomisation)
    code = ("from cellcutter_nb import config;"
            "print(config.config_hash(config.get_preset('paper')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, env={"PYTHONHASHSEED": "123"})
    assert out.stdout.strip() == h


@pytest.mark.parametrize("kind,name", [("preset", "papr"), ("profile", "medium")])
def test_unknown_names_list_choices(kind, name):
    getter = config.get_preset if kind == "preset" else config.get_profile
    with pytest.raises(ValueError, match="choose one of"):
        getter(name)


def test_invalid_values_rejected():
    with pytest.raises(ValueError, match="augment"):
        config.get_preset("paper").replace(augment="rotate")
    with pytest.raises(ValueError, match="log_base"):
        config.get_preset("paper").replace(log_base=1.0)
    with pytest.raises(ValueError, match="field_size"):
        config.get_profile("smoke").replace(field_size=0)


def _names(reqs):
    out = {}
    for r in reqs:
        m = re.match(r"\s*([A-Za-z0-9_.\-]+)(\[[^\]]*\])?\s*(.*)", r)
        out[m.group(1).lower().replace("_", "-")] = m.group(3).replace(" ", "")
    return out


def test_environment_yml_matches_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        wanted += extra
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    conda, pip = [], []
    for dep in env["dependencies"]:
        if isinstance(dep, dict):
            pip += dep["pip"]
        elif not dep.startswith(("python", "pip")):
            conda.append(dep)
    assert "conda-forge" in env["channels"]
    assert _names(wanted) == _names(conda + pip)


def test_import_does_not_pull_tensorflow():
    code = "import sys, cellcutter_nb, cellcutter_nb.data.synth; print('tensorflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False"


def test_every_departure_of_fast_from_the_paper_is_named_in_the_presets_notes():
    from dataclasses import fields

    from cellcutter_nb import presets

    paper, fast = config.get_preset("paper"), config.get_preset("fast")
    changed = {f.name for f in fields(paper)
               if getattr(paper, f.name) != getattr(fast, f.name)} - {"name"}
    # converged_patches is a label threshold (how much is "under-trained"), not the method
    assert changed - {"converged_patches"} == ({
        "learning_rate", "normalisation", "position_prior", "boundary_weight", "integration",
        "one_piece", "finetune_learning_rate"})  # the prior's level, κ: only with prior, weight
    notes = presets.__doc__
    for name in changed - {"learning_rate", "converged_patches"}:
        assert f"``{name}``" in notes, name
    assert "Learning rate 0.001" in notes


def test_the_fine_tuning_rate_is_not_in_cache_keys_but_is_validated():
    fast = config.get_preset("fast")
    assert fast.finetune_learning_rate == 0.0002
    # a fit from scratch never uses it: its cached runs stay valid whatever it is
    assert config.config_hash(fast) == config.config_hash(fast.replace(finetune_learning_rate=1.0))
    assert config.config_hash(fast) != config.config_hash(fast.replace(learning_rate=1.0))
    with pytest.raises(ValueError, match="finetune_learning_rate must be > 0"):
        fast.replace(finetune_learning_rate=0.0)


def test_speed_settings_enter_cache_keys_only_when_set():
    quick = config.get_profile("quick")
    # unset, they are not in the hashed description, so keys stay as before they existed
    described = config._jsonable(quick)
    assert "exact_batches" not in described and "precision" not in described
    assert config._jsonable(quick.replace(precision="float32"))["precision"] == "float32"
    keys = {config.config_hash(p) for p in (
        quick, quick.replace(exact_batches=True), quick.replace(exact_batches=False),
        quick.replace(precision="mixed_bfloat16"))}
    assert len(keys) == 4
    with pytest.raises(ValueError, match="precision"):
        quick.replace(precision="bf16")
