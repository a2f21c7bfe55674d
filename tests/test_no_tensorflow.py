"""The package works with ``KERAS_BACKEND=jax`` on a Python that has no TensorFlow.

The GPU machines this project is benchmarked on have JAX with CUDA but no TensorFlow
(and no TensorFlow wheel can be installed there). The check runs in a subprocess
whose ``sys.meta_path`` starts with a finder that refuses every ``tensorflow*``
module (as if it were not installed), imports the package and every one of its
modules, trains a tiny model through :func:`cellcutter_nb.experiments.model_cache.fit`
and checks that the scores are finite and that no TensorFlow module was loaded.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow  # a subprocess that trains under JAX (~30 s)

SCRIPT = textwrap.dedent("""
    import importlib, importlib.abc, json, pkgutil, sys

    class NoTensorFlow(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name == "tensorflow" or name.startswith(("tensorflow.", "tensorflow_")):
                raise ImportError(f"No module named {name!r} (blocked by the test)")
            return None

    sys.meta_path.insert(0, NoTensorFlow())
    try:
        import tensorflow  # noqa: F401
        raise SystemExit("the finder did not block TensorFlow")
    except ImportError:
        pass

    import cellcutter_nb
    import cellcutter_nb.experiments.paper
    from cellcutter_nb.experiments import model_cache

    needs_tf = []  # every module imports (optional extras aside) without TensorFlow
    for info in pkgutil.walk_packages(cellcutter_nb.__path__, "cellcutter_nb."):
        try:
            importlib.import_module(info.name)
        except ImportError as err:
            if "tensorflow" in str(err):
                needs_tf.append(info.name)
    from cellcutter_nb import config
    from cellcutter_nb.backend import backend_name, device_description

    prof = config.get_profile("smoke").replace(field_size=128, max_epochs=1, steps_per_epoch=1,
                                               n_replicates=1)
    run = model_cache.fit(prof, config.get_preset("paper"), 0, ("fl", "nuc"), cache_dir=None)
    scores = {k: v for k, v in run.scores.items()
              if isinstance(v, (int, float)) and not isinstance(v, bool)}
    loaded = sorted(m for m in sys.modules if m.split(".")[0] == "tensorflow")
    print("RESULT" + json.dumps({"backend": backend_name(), "device": device_description(),
                                 "scores": scores, "tf_modules": loaded,
                                 "needs_tf": needs_tf,
                                 "loss": float(run.history["loss"].iloc[-1])}))
""")


def test_package_trains_under_jax_without_tensorflow(tmp_path: Path):
    pytest.importorskip("jax")
    pytest.importorskip("keras")
    script = tmp_path / "no_tf.py"
    script.write_text(SCRIPT)
    env = dict(os.environ, KERAS_BACKEND="jax", JAX_PLATFORMS="cpu",
               CELLCUTTER_NB_QUIET="1", CELLCUTTER_NB_CACHE=str(tmp_path / "cache"))
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          env=env, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-4000:]
    line = next(x for x in proc.stdout.splitlines() if x.startswith("RESULT"))
    out = json.loads(line[len("RESULT"):])
    assert out["backend"] == "jax"
    assert out["needs_tf"] == [], f"modules that import TensorFlow: {out['needs_tf']}"
    assert out["tf_modules"] == []
    assert out["scores"], out
    for name, value in out["scores"].items():
        assert math.isfinite(value), (name, value)
    assert 0.0 <= out["scores"]["miou"] <= 1.0
    assert math.isfinite(out["loss"])
