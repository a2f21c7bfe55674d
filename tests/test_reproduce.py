"""The reproduce command: selection, failure reporting, report and manifest."""

from __future__ import annotations

import os

import nbformat
import pytest

from cellcutter_nb.app import cli
from cellcutter_nb.experiments import reproduce


def _nb(path, source):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell('profile = "smoke"', metadata={"tags": ["parameters"]}),
                nbformat.v4.new_code_cell("x = 1"), nbformat.v4.new_code_cell(source)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    nbformat.write(nb, path)


def test_select_by_number_and_unknown():
    nbs = reproduce.discover()
    assert reproduce.select(nbs, ["01"])[0].name == "01_data.ipynb"
    assert reproduce.select(nbs, None) == nbs
    with pytest.raises(ValueError, match="matches no notebook"):
        reproduce.select(nbs, ["99"])


@pytest.mark.slow
def test_failing_notebook_names_notebook_and_cell(tmp_path):
    (tmp_path / "notebooks").mkdir()
    _nb(tmp_path / "notebooks" / "01_ok.ipynb", "y = 2")
    _nb(tmp_path / "notebooks" / "02_bad.ipynb", "raise RuntimeError('boom')")
    with pytest.raises(reproduce.NotebookFailed, match=r"02_bad.ipynb failed in cell \d.*boom"):
        reproduce.reproduce("smoke", root=tmp_path)
    kept = tmp_path / "results" / "smoke" / "notebooks" / "02_bad.ipynb"
    assert kept.exists()


def test_kernels_get_the_inline_backend_over_ipc_and_the_environment_is_restored(
        tmp_path, monkeypatch):
    import papermill

    seen = {}

    def fake_execute(path, out, **kwargs):
        seen.update(backend=os.environ.get("MPLBACKEND"), config=kwargs["config"])

    monkeypatch.setenv("MPLBACKEND", "Agg")  # a headless shell's setting must not win
    monkeypatch.setattr(papermill, "execute_notebook", fake_execute)
    reproduce.run_notebook(tmp_path / "a.ipynb", tmp_path / "b.ipynb", {})
    assert seen["backend"] == reproduce.INLINE_BACKEND
    assert seen["config"].KernelManager.transport == "ipc"
    assert os.environ["MPLBACKEND"] == "Agg"


@pytest.mark.slow
def test_report_and_manifest_written(tmp_path, capfd):
    (tmp_path / "notebooks").mkdir()
    _nb(tmp_path / "notebooks" / "01_ok.ipynb", "y = 2")
    _nb(tmp_path / "notebooks" / "02_ok.ipynb", "y = 3")
    report = reproduce.reproduce("smoke", root=tmp_path)
    assert "without encryption" not in capfd.readouterr().err  # the kernels' TCP warning
    text = report.read_text()
    assert "01_ok" in text and "02_ok" in text and "seed: 0" in text and "keras" in text
    reproduce.reproduce("smoke", only=["02"], root=tmp_path)  # earlier timings are kept
    assert "01_ok" in report.read_text()
    assert (tmp_path / "results" / "smoke" / "figures" / "MANIFEST.md").exists()


def test_cli_list_and_bad_profile(capsys):
    assert cli.main(["reproduce", "--list"]) == 0
    assert "01_data" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        cli.main(["reproduce", "--profile", "huge"])


@pytest.mark.slow
def test_rerun_skips_unchanged_notebooks_and_reruns_changed(tmp_path, capsys):
    (tmp_path / "notebooks").mkdir()
    _nb(tmp_path / "notebooks" / "01_a.ipynb", "y = 2")
    _nb(tmp_path / "notebooks" / "02_b.ipynb", "y = 3")
    reproduce.reproduce("smoke", root=tmp_path)
    capsys.readouterr()
    _nb(tmp_path / "notebooks" / "02_b.ipynb", "y = 4")  # only 02 changed
    report = reproduce.reproduce("smoke", root=tmp_path)
    out = capsys.readouterr().out
    assert "01_a.ipynb: inputs unchanged, not rerun" in out
    assert "02_b.ipynb done" in out
    assert "inputs unchanged, not rerun" in report.read_text()
    reproduce.reproduce("smoke", root=tmp_path, force=True)
    assert "01_a.ipynb done" in capsys.readouterr().out
    # an interrupted run (executed copy lost) is rerun
    (tmp_path / "results" / "smoke" / "notebooks" / "01_a.ipynb").unlink()
    reproduce.reproduce("smoke", root=tmp_path)
    assert "01_a.ipynb done" in capsys.readouterr().out


def test_git_commit_ignores_the_runners_own_outputs(tmp_path):
    import subprocess

    from cellcutter_nb.experiments.reproduce import git_commit

    def git(*args):
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

    git("init", "-q")
    for name in ("figures/a.png", "results/quick/REPORT.md", "code.py"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("0")
    git("add", ".")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "init")
    (tmp_path / "figures/a.png").write_text("1")
    (tmp_path / "results/quick/REPORT.md").write_text("1")
    assert not git_commit(tmp_path).endswith("+dirty")
    (tmp_path / "code.py").write_text("1")
    assert git_commit(tmp_path).endswith("+dirty")
