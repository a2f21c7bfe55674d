"""JupyterLab: ``make lab`` opens the notebooks, and in a real browser a person opens
notebook 10, runs it, and sees its figure and the explorer.

JupyterLab (the ``notebook`` extra) starts on a free local port with a token, on a copy of
``notebooks/10_explore.ipynb`` set to the smoke profile; playwright drives Debian's
``chromium`` (no browser download). The test runs all cells as a person would (Run → Run
All), then checks that every code cell ran without error, that the figure is a rendered
image, that the explorer's controls render (the "channels:" label whole, the channel
checkboxes side by side in a narrow row) and that pressing **train** fills the step count,
the status and a new figure. A screenshot goes to ``results/test-artifacts/`` (git-ignored),
also when a check fails.

The test skips only when no chromium (or playwright) is found on a developer's machine;
``.ci/run`` installs chromium and sets ``CELLCUTTER_NB_BROWSER_REQUIRED=1``, which turns a
missing browser into a failure.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest

from cellcutter_nb.experiments.reproduce import INLINE_BACKEND, ROOT

ARTIFACTS = ROOT / "results" / "test-artifacts"
NOTEBOOK = ROOT / "notebooks" / "10_explore.ipynb"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]
#: Seconds for the server to answer, and for the notebook (imports, one smoke training).
START_S, RUN_S = 90, 300


@pytest.fixture(scope="module")
def chromium() -> str:
    """Path of a chromium to drive; skip (fail under ``.ci/run``) when there is none."""
    names = (os.environ.get("CELLCUTTER_NB_CHROMIUM"), "chromium", "chromium-browser",
             "google-chrome")
    found = next((shutil.which(n) for n in names if n and shutil.which(n)), None)
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        found = None
    if found is None:
        message = ("no chromium and playwright to drive JupyterLab: apt-get install chromium; "
                   "pip install -e '.[test]'")
        if os.environ.get("CELLCUTTER_NB_BROWSER_REQUIRED") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return found


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _api(url: str, path: str, token: str, method: str = "GET") -> object:
    req = urllib.request.Request(f"{url}{path}", method=method,
                                 headers={"Authorization": f"token {token}"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        body = resp.read()
    return json.loads(body) if body else None


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """JupyterLab serving a smoke-profile copy of notebook 10: yields (url, token)."""
    folder = tmp_path_factory.mktemp("lab")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    params = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    params.source = params.source.replace('profile = "quick"', 'profile = "smoke"')
    (folder / "notebooks").mkdir()
    nbformat.write(nb, folder / "notebooks" / NOTEBOOK.name)
    port, token = _free_port(), "cellcutter-test-token"
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", MPLBACKEND=INLINE_BACKEND,
               CELLCUTTER_NB_CACHE=str(folder / "cache"), JUPYTER_CONFIG_DIR=str(folder / "cfg"),
               JUPYTER_RUNTIME_DIR=str(folder / "run"), JUPYTER_DATA_DIR=str(folder / "data"))
    cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", f"--port={port}",
           "--ServerApp.ip=127.0.0.1", "--ServerApp.port_retries=0",
           f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={folder / 'notebooks'}",
           "--LabApp.expose_app_in_browser=True",
           f"--LabApp.user_settings_dir={folder / 'settings'}",
           f"--LabApp.workspaces_dir={folder / 'workspaces'}"]
    if os.geteuid() == 0:
        cmd.append("--allow-root")
    page_config = folder / "cfg" / "labconfig" / "page_config.json"  # no news pop-up
    page_config.parent.mkdir(parents=True)
    page_config.write_text(json.dumps(
        {"disabledExtensions": {"@jupyterlab/apputils-extension:announcements": True}}))
    log = (folder / "lab.log").open("w")
    server = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT,
                              start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_for_server(server, url, token, folder / "lab.log")
        yield url, token
    finally:
        try:
            for kernel in _api(url, "/api/kernels", token) or []:
                _api(url, f"/api/kernels/{kernel['id']}", token, method="DELETE")
        except OSError:
            pass
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
        log.close()


def _wait_for_server(server: subprocess.Popen, url: str, token: str, log: Path) -> None:
    deadline = time.monotonic() + START_S
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"JupyterLab exited ({server.returncode}):\n{log.read_text()[-3000:]}")
        try:
            _api(url, "/api/status", token)
            return
        except OSError:
            time.sleep(1)
    pytest.fail(f"JupyterLab did not answer in {START_S} s:\n{log.read_text()[-3000:]}")


#: The open notebook's code cells from Lab's own model: execution count and outputs.
CELLS_JS = """() => {
  const panel = window.jupyterapp && window.jupyterapp.shell.currentWidget;
  if (!panel || !panel.content || !panel.content.model) { return null; }
  const cells = panel.content.model.cells, out = [];
  for (let i = 0; i < cells.length; i++) {
    const c = cells.get(i);
    if (c.type === 'code') { out.push({count: c.executionCount, outputs: c.outputs.toJSON()}); }
  }
  return out;
}"""
KERNEL_IDLE_JS = """() => {
  const panel = window.jupyterapp && window.jupyterapp.shell.currentWidget;
  const kernel = panel && panel.sessionContext && panel.sessionContext.session
    && panel.sessionContext.session.kernel;
  return !!kernel && kernel.status === 'idle';
}"""


def _make_lab(*variables: str) -> str:
    """The command ``make lab`` would run (``make -n``: nothing is run or installed)."""
    out = subprocess.run(["make", "-n", "lab", *variables], cwd=ROOT, text=True,
                         capture_output=True, check=True).stdout
    return " ".join(out.replace("\\\n", " ").split("jupyter lab", 1)[1].split())


def test_make_lab_opens_the_notebooks_folder():
    command = _make_lab()
    assert command.startswith("--ServerApp.root_dir=notebooks")
    assert ("--allow-root" in command) == (os.geteuid() == 0)  # JupyterLab refuses root without
    assert "--no-browser" not in command
    assert "--no-browser" in _make_lab("NO_BROWSER=1")
    assert "--port=9999" in _make_lab("LAB_ARGS=--port=9999")


@pytest.mark.slow
def test_notebook_10_runs_in_jupyterlab_with_figure_and_explorer(chromium, lab):
    from playwright.sync_api import sync_playwright

    url, token = lab
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        try:
            page.goto(f"{url}/lab/tree/{NOTEBOOK.name}?token={token}")
            page.wait_for_function(KERNEL_IDLE_JS, timeout=START_S * 1000)
            page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
            page.wait_for_function(
                f"() => {{ const c = ({CELLS_JS})(); return c && c.every(x => x.count) "
                f"&& ({KERNEL_IDLE_JS})(); }}", timeout=RUN_S * 1000, polling=1000)
            _check_cells(page.evaluate(CELLS_JS))
            _check_figure(page)
            _check_explorer(page)
        finally:
            page.screenshot(path=str(ARTIFACTS / "jupyterlab_10_explore.png"))
            browser.close()


def _check_cells(cells: list[dict]) -> None:
    """Every code cell ran, none raised, and the static run's figure is a PNG output."""
    outputs = [o for c in cells for o in c["outputs"]]
    errors = [f"{o['ename']}: {o['evalue']}" for o in outputs if o["output_type"] == "error"]
    assert not errors, errors
    assert any("image/png" in o.get("data", {}) for o in outputs), "no figure output"
    assert any("application/vnd.jupyter.widget-view+json" in o.get("data", {})
               for o in outputs), "the explorer was not displayed as a widget"


def _check_figure(page) -> None:
    """The figure is an image the browser decoded (not a text placeholder)."""
    image = page.locator(".jp-OutputArea-output.jp-RenderedImage img").first
    image.scroll_into_view_if_needed()
    size = image.evaluate("img => [img.naturalWidth, img.naturalHeight]")
    assert size[0] > 300 and size[1] > 100, size


def _check_explorer(page) -> None:
    """Controls render compactly; train fills the count, the status and a new figure."""
    explorer = page.locator(".jp-OutputArea-output .widget-vbox").first
    explorer.scroll_into_view_if_needed()
    for text in ("λ (overlap)", "β (outside mask)", "budget (s)", "profile"):
        assert page.get_by_text(text, exact=True).first.is_visible(), text
    label = page.locator(".widget-label", has_text="channels:").first
    whole = label.evaluate("e => e.scrollWidth <= e.clientWidth && e.textContent")
    assert whole == "channels:", "the 'channels:' label is cut"
    last = page.locator(".widget-checkbox", has_text="train with mask").first.bounding_box()
    width = last["x"] + last["width"] - label.bounding_box()["x"]
    assert width < 500, f"channel checkboxes spread over {width:.0f} px"
    page.get_by_role("button", name="train").click()
    status = page.locator(".widget-html", has_text="done:")
    status.wait_for(timeout=RUN_S * 1000)
    assert "under-trained" in status.inner_text()
    count = page.get_by_text(re.compile(r"^\d+/\d+ steps, [\d,]+ patches$"))
    assert count.count() == 1 and count.is_visible(), "no step count beside the bar"
    new_figure = page.locator(".widget-output img").first
    new_figure.wait_for(timeout=30_000)
    new_figure.scroll_into_view_if_needed()
    assert new_figure.evaluate("img => img.naturalWidth") > 300
    explorer.scroll_into_view_if_needed()
