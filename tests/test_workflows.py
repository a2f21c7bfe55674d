"""The GitHub Actions workflows parse and run what the README promises.

* ``ci.yml``: on push and pull request, Python 3.11 on ``ubuntu-latest``, ``make test``;
* ``reproduce-gpu.yml``: by hand (and on a schedule) on a ``[self-hosted, gpu]`` runner,
  ``make reproduce PROFILE=full``, then ``results/`` and ``figures/`` uploaded even when
  the run failed.
"""

from __future__ import annotations

from pathlib import Path

import pytest

yaml = pytest.importorskip("yaml")  # PyYAML: the test extra (and a dependency of papermill)

WORKFLOWS = Path(__file__).resolve().parents[1] / ".github" / "workflows"


def load(name: str) -> dict:
    wf = yaml.safe_load((WORKFLOWS / name).read_text())
    assert isinstance(wf, dict) and wf.get("jobs"), f"{name} has no jobs"
    return wf


def triggers(wf: dict) -> dict:
    """The ``on:`` block (YAML 1.1 reads the bare key ``on`` as True)."""
    on = wf.get("on", wf.get(True))
    if isinstance(on, str):
        return {on: None}
    if isinstance(on, list):
        return dict.fromkeys(on)
    return dict(on)


def runs(job: dict) -> list[str]:
    """Every command line of a job's ``run:`` steps."""
    return [line.strip() for step in job["steps"] if "run" in step
            for line in step["run"].splitlines() if line.strip()]


@pytest.mark.parametrize("name", ["ci.yml", "reproduce-gpu.yml"])
def test_parses_as_yaml(name):
    wf = load(name)
    assert wf.get("name")
    for job in wf["jobs"].values():
        assert job["steps"] and all("run" in s or "uses" in s for s in job["steps"])


def test_ci_runs_make_test_on_push_and_pull_request():
    wf = load("ci.yml")
    assert {"push", "pull_request"} <= set(triggers(wf))
    (job,) = wf["jobs"].values()
    assert job["runs-on"] == "ubuntu-latest"
    setup = [s for s in job["steps"] if str(s.get("uses", "")).startswith("actions/setup-python")]
    assert len(setup) == 1 and str(setup[0]["with"]["python-version"]) == "3.11"
    assert runs(job) == ["make test"]


def test_gpu_reproduce_runs_full_profile_on_self_hosted_gpu():
    wf = load("reproduce-gpu.yml")
    assert "workflow_dispatch" in triggers(wf)
    (job,) = wf["jobs"].values()
    assert job["runs-on"] == ["self-hosted", "gpu"]
    assert int(job["timeout-minutes"]) >= 360  # generous: paper scale, every notebook
    assert [c for c in runs(job) if c.startswith("make reproduce")] == [
        "make reproduce PROFILE=full"]


def test_gpu_uploads_results_and_figures_even_on_failure():
    job = next(iter(load("reproduce-gpu.yml")["jobs"].values()))
    steps = job["steps"]
    upload = [i for i, s in enumerate(steps) if s.get("uses") == "actions/upload-artifact@v4"]
    assert len(upload) == 1
    step = steps[upload[0]]
    assert step.get("if") == "always()"
    paths = {p.strip().rstrip("/") for p in step["with"]["path"].splitlines() if p.strip()}
    assert {"results", "figures"} <= paths
    reproduce = [i for i, s in enumerate(steps) if "make reproduce" in s.get("run", "")]
    assert reproduce and reproduce[0] < upload[0]
