"""The explorer: :func:`explore` as a plain function, and its ipywidgets UI built headless."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cellcutter_nb.app import widgets
from cellcutter_nb.app.widgets import RANGES, ExploreParams, check_params, explore
from cellcutter_nb.channels import COMBINATIONS, combo_name


@pytest.fixture(scope="module")
def result():
    """One smoke-profile exploration of the smallest area (a few seconds)."""
    return explore(ExploreParams(size=128, profile="smoke", max_seconds=10), progress=False)


def test_explore_returns_area_shaped_labels(result):
    assert result.labels.shape == (128, 128)
    assert result.labels.dtype.kind in "iu"
    assert result.position_only.shape == (128, 128)
    n_markers = len(result.field.markers)
    assert 0 <= result.labels.min() and result.labels.max() <= n_markers
    assert result.position_only.max() <= n_markers


def test_explore_scores_every_true_cell_in_unit_interval(result):
    table = result.table
    assert len(table) == len(np.unique(result.field.labels)) - 1 > 0
    for col in ("unsupervised", "position only"):
        assert table[col].between(0, 1).all()
    s = result.summary
    assert list(s.index) == ["unsupervised", "position only"]
    assert s[["miou", "frac_iou_ge_0.5"]].stack().between(0, 1).all()
    assert (s["n_cells"] == len(table)).all()
    assert s.loc["position only", "miou"] > 0.3  # the reference itself is sensible


def test_explore_result_has_figure_and_history(result):
    from matplotlib.figure import Figure

    assert isinstance(result.figure, Figure) and len(result.figure.axes) == 3
    assert isinstance(result.history, pd.DataFrame) and len(result.history) >= 1
    assert result.stopped in ("max_epochs", "time", "stable")
    assert "miou" not in result.history  # ground truth only scores, never enters training


def test_explore_is_bounded_by_the_budget(result):
    # the budget is checked after every training step: only the last may end past it
    assert (result.history["seconds"].iloc[:-1] <= 10).all()
    assert len(result.history) <= widgets.step_profile("smoke").max_epochs


@pytest.mark.parametrize("changes, words", [
    ({"channels": ()}, "No channel selected"),
    ({"channels": ("nuc",)}, "nucleus channel alone"),
    ({"channels": ("fl", "gfp")}, "Unknown channel"),
    ({"channels": ("fl", "fl")}, "repeat"),
    ({"lam": 0.0}, "lam=0.0"),
    ({"beta": -1.0}, "beta=-1.0"),
    ({"position_sigma": 100.0}, "position_sigma"),
    ({"size": 100}, "size=100"),
    ({"size": 200.5}, "size"),
    ({"field_seed": -1}, "field_seed"),
    ({"seed": True}, "seed"),
    ({"profile": "huge"}, "profile"),
    ({"max_seconds": 0}, "max_seconds"),
    ({"learning_rate": 0.1}, "learning_rate"),
])
def test_bad_settings_raise_value_error_before_training(changes, words, monkeypatch):
    import cellcutter_nb.core.train

    def no_training(*args, **kwargs):
        raise AssertionError("trained despite invalid settings")

    monkeypatch.setattr(cellcutter_nb.core.train, "train", no_training)
    with pytest.raises(ValueError, match=words.replace("(", r"\(")):
        explore(**changes)


def test_check_params_accepts_table1_names_and_dicts():
    for chans in COMBINATIONS:
        assert check_params(channels=combo_name(chans)).channels == chans
    p = check_params({"channels": "bf,nuc", "lam": 1.44, "size": 256, "profile": "quick"})
    assert p.channels == ("bf", "nuc") and p.lam == 1.44 and p.size == 256
    assert p.budget == widgets.DEFAULT_SECONDS["quick"] <= 30
    assert check_params(max_seconds=5).budget == 5.0


def test_explorer_builds_headless_with_documented_ranges():
    ui = widgets.Explorer()
    c = ui.controls
    assert set(c) == {"lam", "beta", "position_sigma", "fl", "bf", "nuc", "use_mask", "size",
                      "field_seed", "seed", "profile", "max_seconds", "start"}
    assert c["start"].options == ("scratch", "pretrained") and c["start"].value == "scratch"
    for name, (lo, hi, step) in RANGES.items():
        assert (c[name].min, c[name].max, c[name].step) == (lo, hi, step), name
    defaults = ExploreParams()
    assert c["lam"].value == defaults.lam == 3.32
    assert c["beta"].value == defaults.beta == 15.0
    assert c["position_sigma"].value == defaults.position_sigma == 15.0
    assert (c["fl"].value, c["bf"].value, c["nuc"].value) == (True, False, True)
    assert set(c["profile"].options) == {"smoke", "quick", "full"}
    assert ui.params() == check_params(max_seconds=None)
    # smoke's 4 steps end training before any budget: the slider says so and is ignored
    assert c["max_seconds"].disabled and "4 training steps" in c["max_seconds"].tooltip
    assert widgets.DEFAULT_SECONDS["smoke"] is None and ui.params().budget is None
    c["profile"].value = "quick"  # the budget follows the profile
    assert not c["max_seconds"].disabled
    assert c["max_seconds"].value == widgets.DEFAULT_SECONDS["quick"] == ui.params().budget
    assert ui.widget.children and ui.button.description == "train"
    for name in ("fl", "bf", "nuc", "use_mask"):  # compact, not 300 px each
        assert c[name].layout.width == "auto"


def test_explorer_reports_invalid_settings_without_training(monkeypatch):
    monkeypatch.setattr(widgets, "explore", lambda *a, **k: pytest.fail("trained"))
    ui = widgets.Explorer()
    for ch in ("fl", "bf", "nuc"):
        ui.controls[ch].value = False
    with pytest.raises(ValueError, match="No channel"):
        ui.params()
    assert ui.run() is None
    assert "No channel selected" in ui.status.value
    assert not ui.button.disabled


def test_explorer_button_runs_explore_and_shows_progress(result, monkeypatch):
    seen = {}

    def fake(params, progress=None, on_epoch=None):
        seen["params"] = params
        on_epoch({"epoch": 0, "loss": 1.0, "patches_seen": 25})
        seen["count"] = ui.count.value
        return result

    monkeypatch.setattr(widgets, "explore", fake)
    ui = widgets.Explorer({"lam": 1.44, "channels": "FL"})
    ui.controls["beta"].value = 20.0
    ui.button.click()
    assert seen["params"].lam == 1.44 and seen["params"].beta == 20.0
    assert seen["params"].channels == ("fl",)
    assert ui.result is result
    assert seen["count"] == f"1/{ui.progress.max} steps, 25 patches"
    assert ui.progress.value == 1
    assert "done" in ui.status.value and "under-trained" in ui.status.value


def test_explorer_error_clears_the_last_run(result, monkeypatch):
    monkeypatch.setattr(widgets, "explore", lambda *a, **k: result)
    ui = widgets.Explorer()
    cleared = []
    monkeypatch.setattr(ui.output, "clear_output", lambda *a, **k: cleared.append(True))
    ui.run()
    assert ui.result is result and ui.count.value == "0/4 steps" and len(cleared) == 1

    def broken(*args, **kwargs):
        raise RuntimeError("out of <memory>")

    monkeypatch.setattr(widgets, "explore", broken)
    assert ui.run() is None
    assert ui.result is None and ui.progress.value == 0 and ui.count.value == ""
    assert len(cleared) == 3  # cleared when the run started, and again on the error
    assert "RuntimeError: out of &lt;memory&gt;" in ui.status.value


def test_explorer_fine_tunes_the_starting_model_with_its_recipe(monkeypatch):
    seen = {}

    def fake_train(images, channels, preset, profile, **kwargs):
        seen.update(preset=preset, unet=kwargs["unet"], prior=kwargs["prior_patches"])
        raise RuntimeError("stop here")

    monkeypatch.setattr("cellcutter_nb.core.train.train", fake_train)
    with pytest.raises(RuntimeError, match="stop here"):
        widgets.explore(start="pretrained", lam=2.0)
    assert seen["preset"].name == "fast" and seen["preset"].lam == 2.0
    assert seen["unet"] is not None and seen["prior"] >= 20_000
    with pytest.raises(ValueError, match="start='best' is invalid"):
        check_params(start="best")
