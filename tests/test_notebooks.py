"""Every numbered notebook runs headlessly under papermill in the smoke profile.

One test per notebook, discovered from ``notebooks/``, so a new notebook cannot be
forgotten; each must also be committed without outputs and with a ``parameters`` cell.
"""

from __future__ import annotations

import json

import pytest

from cellcutter_nb.runner import discover, run_notebook

NOTEBOOKS = discover()


def test_notebooks_exist():
    assert [p.name for p in NOTEBOOKS][:1] == ["01_data.ipynb"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_committed_clean_with_parameters_cell(path):
    nb = json.loads(path.read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in code)
    assert "parameters" in code[0]["metadata"].get("tags", [])
    assert "profile" in "".join(code[0]["source"])


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
    assert sorted(figs.glob("*.png")), "the notebook saved no figure"
    assert all((figs / (p.stem + ".pdf")).exists() for p in figs.glob("*.png"))
