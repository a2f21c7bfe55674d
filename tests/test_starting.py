"""Starting models: saving, loading, the checks against channels and patch geometry, and
fine-tuning the shipped one."""

from __future__ import annotations

import json
from dataclasses import asdict, replace

import numpy as np
import pandas as pd
import pytest

from cellcutter_nb.app.pipeline import segment, starting_point
from cellcutter_nb.config import get_preset, get_profile
from cellcutter_nb.core import starting
from cellcutter_nb.core.model import build_unet
from cellcutter_nb.data.synth import make_field
from cellcutter_nb.experiments import model_cache, report
from cellcutter_nb.experiments.starting_runs import STARTING_MODEL_ROW, starting_model_rows

FAST = get_preset("fast")


def _card(name: str = "fl_nuc", channels: tuple[str, ...] = ("fl", "nuc"),
          **changes) -> starting.ModelCard:
    card = starting.ModelCard(
        name=name, channels=list(channels), patch_size=FAST.patch_size, width=4, depth=2,
        norm=FAST.normalisation, prior=list(FAST.prior or ()),
        position_sigma=FAST.position_sigma, preset="fast")
    return replace(card, **changes)


def _tiny_unet(card: starting.ModelCard):
    return build_unet(len(card.channels) + 1, card.width, card.depth, card.patch_size,
                      seed=3, norm=card.norm, prior=tuple(card.prior) or None)


def test_a_saved_model_loads_with_its_weights_to_float16_precision(tmp_path):
    card = _card()
    unet = _tiny_unet(card)
    path = starting.save_starting_model(unet, card, tmp_path)
    assert path.name == "fl_nuc.npz" and json.loads((tmp_path / "fl_nuc.json").read_text())[
        "channels"] == ["fl", "nuc"]
    loaded, loaded_card = starting.load_starting_model(("fl", "nuc"), FAST, tmp_path)
    assert loaded_card == card
    for saved, read in zip(unet.get_weights(), loaded.get_weights(), strict=True):
        np.testing.assert_allclose(read, saved, rtol=1e-3, atol=1e-4)
    x = np.random.default_rng(0).normal(size=(2, FAST.patch_size, FAST.patch_size, 3))
    np.testing.assert_allclose(loaded.predict(x, verbose=0), unet.predict(x, verbose=0),
                               atol=2e-2)


def test_other_channels_or_order_are_refused_with_the_fix(tmp_path):
    card = _card()
    starting.save_starting_model(_tiny_unet(card), card, tmp_path)
    with pytest.raises(ValueError, match=r"No starting model for channels \('bf', 'nuc'\); "
                                         r"shipped: fl\+nuc.*--start scratch"):
        starting.load_starting_model(("bf", "nuc"), FAST, tmp_path)
    with pytest.raises(ValueError, match=r"reads channels \['fl', 'nuc'\], not "
                                         r"\['nuc', 'fl'\]"):
        card.check(("nuc", "fl"), FAST)


def test_another_patch_geometry_is_refused(tmp_path):
    card = _card()
    starting.save_starting_model(_tiny_unet(card), card, tmp_path)
    other = replace(FAST, patch_size=FAST.patch_size * 2)
    with pytest.raises(ValueError, match=rf"takes {FAST.patch_size}-px patches.*"
                                         rf"cuts {2 * FAST.patch_size}-px"):
        starting.load_starting_model(("fl", "nuc"), other, tmp_path)


def test_a_card_without_weights_is_not_available(tmp_path):
    (tmp_path / "fl.json").write_text(json.dumps(asdict(_card("fl", ("fl",)))))
    assert starting.available(tmp_path) == []


def test_auto_starts_from_scratch_where_no_model_fits_and_pretrained_refuses():
    assert starting_point("auto", ("bf",), FAST) == (None, None)
    with pytest.raises(ValueError, match="No starting model for channels"):
        starting_point("pretrained", ("bf",), FAST)
    with pytest.raises(ValueError, match="start='best'; choose one of"):
        starting_point("best", ("fl", "nuc"), FAST)


def test_auto_keeps_the_paper_presets_from_scratch_and_pretrained_is_explicit():
    paper_preset = get_preset("paper")
    assert starting_point("auto", ("fl", "nuc"), paper_preset) == (None, None)
    unet, card = starting_point("auto", ("fl", "nuc"), FAST)
    assert card.preset == "fast" and unet is not None
    _, card = starting_point("pretrained", ("fl", "nuc"), paper_preset)
    assert card.name == "fl_nuc"


def test_the_shipped_model_fine_tunes_on_smoke_repeatably():
    card = starting.find_card(("fl", "nuc"))
    assert card.training["patches_seen"] >= 20_000 and card.scores
    assert set(card.training["field_seeds"]).isdisjoint(range(100))
    assert (starting.MODELS_DIR / f"{card.name}.npz").stat().st_size <= 5 * 2**20
    field = make_field(0, shape=160)
    labels, _, history = segment(field, ("fl", "nuc"), "fast", get_profile("smoke"),
                                 start="pretrained", progress=False)
    assert history.attrs["start"] == card
    assert labels.shape == field.shape and labels.max() > 0
    again, _, _ = segment(field, ("fl", "nuc"), "fast", get_profile("smoke"),
                          start="pretrained", progress=False)
    np.testing.assert_array_equal(again, labels)


@pytest.mark.parametrize(("prior", "rate"), [(0, FAST.learning_rate),
                                             (60_000, FAST.finetune_learning_rate)])
def test_a_run_from_a_starting_model_fine_tunes_at_the_presets_fine_tuning_rate(
        monkeypatch, prior, rate):
    from cellcutter_nb.core import train as train_module

    used = {}

    def stop(field, channels, preset, *args):
        used["rate"] = preset.learning_rate
        raise RuntimeError("stop here")

    monkeypatch.setattr(train_module, "_start", stop)
    with pytest.raises(RuntimeError, match="stop here"):
        train_module.train(make_field(0, shape=96), ("fl", "nuc"), FAST, "smoke",
                           prior_patches=prior)
    assert used["rate"] == rate


def test_a_starting_model_is_never_scored_on_a_field_it_trained_on(tmp_path):
    card = starting.find_card(("fl", "nuc"))
    trained = int(card.training["field_seeds"][0])  # = field_seed(seed=1, index=0)
    prof = get_profile("smoke")
    with pytest.raises(ValueError, match=f"trained on synthetic field seed {trained}"):
        model_cache.fit(prof, FAST, trained % 1000, ("fl", "nuc"), seed=trained // 1000,
                        cache_dir=tmp_path, start="pretrained")
    with pytest.raises(ValueError, match="start='warm'; choose one of"):
        model_cache.fit(prof, FAST, 0, ("fl", "nuc"), cache_dir=tmp_path, start="warm")
    assert not any(tmp_path.iterdir())  # refused before anything was written


def test_no_row_without_a_shipped_model_of_the_profiles_network_size(tmp_path):
    smoke = get_profile("smoke").replace(field_size=160, n_replicates=2)
    assert starting_model_rows(smoke, FAST, 0, [("fl", "nuc")], tmp_path, False) == []
    assert not any(tmp_path.iterdir())  # nothing trained


def test_a_fine_tuned_run_has_its_own_cache_entry_and_reloads(tmp_path):
    card = starting.find_card(("fl", "nuc"))
    prof = get_profile("smoke").replace(field_size=160, unet_width=card.width,
                                        unet_depth=card.depth, max_epochs=1)
    tuned = model_cache.fit(prof, FAST, 0, ("fl", "nuc"), cache_dir=tmp_path, start="pretrained")
    assert tuned.key != model_cache.run_key(prof, FAST, 0, ("fl", "nuc"), True, 0)
    assert tuned.scores["patches_seen"] > 0 and tuned.scores["miou"] > 0.5
    again = model_cache.fit(prof, FAST, 0, ("fl", "nuc"), cache_dir=tmp_path, start="pretrained")
    assert again.key == tuned.key and again.scores == tuned.scores
    assert [p.name for p in (tmp_path / "runs").iterdir()] == [tuned.key]


def test_the_cnn_claims_are_made_again_for_the_starting_model_row():
    rows = [("position only", "FL", r, v) for r, v in enumerate((0.70, 0.68))]
    rows += [("CellProfiler", "FL", r, 0.7) for r in range(2)]
    rows += [("CellProfiler (same mask)", "FL", r, 0.78) for r in range(2)]
    rows += [("CNN w/ mask", c, r, 0.69) for c in ("FL", "FL+Nuc") for r in range(2)]
    rows += [(STARTING_MODEL_ROW, "FL+Nuc", r, v) for r, v in enumerate((0.85, 0.89))]
    table = pd.DataFrame(rows, columns=["method", "combination", "replicate", "miou"])
    claims = report.table1_conclusions(table).set_index("claim")
    row = claims.loc["CNN from starting model > position only"]
    assert row["n"] == 2 and row["ours"] == pytest.approx(0.18) and row["verdict"].startswith(
        "held")
    assert claims.loc["CNN from starting model > CellProfiler (same mask)", "ours"] == \
        pytest.approx(0.09)
    plain = report.table1_conclusions(table[table["method"] != STARTING_MODEL_ROW])
    assert not plain["claim"].str.contains("starting model").any()
