"""Every numbered notebook runs headlessly under papermill in the smoke profile.

One test per notebook, discovered from ``notebooks/``, so a new notebook cannot be
forgotten; each must also be committed without outputs and with a ``parameters`` cell.
The kernels run with the real inline matplotlib backend (as in JupyterLab), and every cell
that draws must come back with its figure as an ``image/png`` output.
"""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest

from cellcutter_nb.experiments.reproduce import discover, run_notebook

NOTEBOOKS = discover()
#: Tables each notebook must write (smoke profile) and their columns holding IoUs/rates.
EXPECTED_TABLES = {
    "04_training_traces": {"04_training_traces": ["miou", "patch_mean_iou"]},
    "05_table1_ablation": {"05_table1": ["miou", "ap50", "f1"]},
    "06_cross_modality": {"06_cross_modality": ["miou"]},
    "07_unseen_image": {"07_unseen_image": ["agreement", "miou_unseen", "miou_own"]},
    "08_mask_edge_effect": {"08_mask_edge_effect": ["iou_with", "iou_without"]},
    "09_paper_vs_code": {"09_presets": ["miou", "ap50", "f1"]},
    "10_explore": {"10_explore_summary": ["miou", "std", "frac_iou_ge_0.5"],
                   "10_explore_per_cell": ["unsupervised", "position only"]},
    "12_your_own_images": {"12_your_own_images": ["markers_with_cell", "mask_covered",
                                                  "miou_vs_position_only"]},
}


#: A code cell draws when it makes a figure with the house style or displays an image.
DRAWS = re.compile(r"figures\.(subplots|training_traces|combination_traces|patch_gallery|"
                   r"ours_vs_paper|show)\(|\bImage\(")


def cells_without_figure(executed: dict) -> list[str]:
    """First lines of the code cells that draw (:data:`DRAWS`) but have no PNG output."""
    return ["".join(c["source"]).splitlines()[0] for c in executed["cells"]
            if c["cell_type"] == "code" and DRAWS.search("".join(c["source"]))
            and not any("image/png" in o.get("data", {}) for o in c.get("outputs", []))]


@pytest.fixture(scope="module", autouse=True)
def shared_model_cache(tmp_path_factory):
    """One model cache for the session's notebooks, as in a real run: notebook 05 reuses
    the models 04 trained (and a fresh cache every session, so nothing stale is read)."""
    mp = pytest.MonkeyPatch()
    mp.setenv("CELLCUTTER_NB_CACHE", str(tmp_path_factory.mktemp("model_cache")))
    yield
    mp.undo()


def test_notebooks_exist():
    assert [p.name for p in NOTEBOOKS][:1] == ["01_data.ipynb"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_committed_clean_with_parameters_cell(path):
    nb = json.loads(path.read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in code)
    assert "parameters" in code[0]["metadata"].get("tags", [])
    params = "".join(code[0]["source"])
    # a person opening the notebook gets the quick profile (smoke is CI's, passed explicitly),
    # and an interactive run writes no figure unless told where (never into notebooks/)
    assert re.search(r'^profile = "quick"', params, re.M)
    assert re.search(r"^figures_dir = None", params, re.M)


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_runs_in_smoke_profile(path, tmp_path):
    out = tmp_path / path.name
    figs, tables = tmp_path / "figures", tmp_path / "tables"
    run_notebook(path, out, {"profile": "smoke", "seed": 0, "figures_dir": str(figs),
                             "tables_dir": str(tables)})
    executed = json.loads(out.read_text())
    streams = [o for c in executed["cells"] for o in c.get("outputs", [])
               if o.get("output_type") == "stream" and o.get("name") == "stderr"]
    banner = [s for s in streams if "oneDNN" in "".join(s["text"])
              or "absl::InitializeLog" in "".join(s["text"])]
    assert not banner, "TensorFlow banners leaked into the notebook"
    assert not cells_without_figure(executed), "cells that draw but show no figure"
    assert sorted(figs.glob("*.png")), "the notebook saved no figure"
    assert all((figs / (p.stem + ".pdf")).exists() for p in figs.glob("*.png"))
    for name, columns in EXPECTED_TABLES.get(path.stem, {}).items():
        table = pd.read_csv(tables / f"{name}.csv")
        assert len(table), f"{name}.csv is empty"
        for col in columns:
            values = table[col].to_numpy(np.float64)
            assert np.isfinite(values).all() and (values >= 0).all() and (values <= 1).all(), (
                f"{name}.csv: {col} outside [0, 1]")
