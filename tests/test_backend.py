"""The backend switch for bit-for-bit repeatable CPU runs (``CELLCUTTER_NB_DETERMINISTIC``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

PROBE = """
import json
from cellcutter_nb import backend
import tensorflow as tf
print(json.dumps([backend.DETERMINISTIC, tf.config.threading.get_intra_op_parallelism_threads(),
                  tf.config.threading.get_inter_op_parallelism_threads()]))
"""


def _probe(value: str | None, code: str = PROBE) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "CELLCUTTER_NB_DETERMINISTIC"}
    env["KERAS_BACKEND"] = "tensorflow"
    if value is not None:
        env["CELLCUTTER_NB_DETERMINISTIC"] = value
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, timeout=300)


@pytest.mark.slow
@pytest.mark.parametrize(("value", "expected"), [("1", [True, 1, 1]), (None, [False, 0, 0])])
def test_deterministic_switch_sets_one_thread(value, expected):
    out = _probe(value)
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads(out.stdout.strip().splitlines()[-1]) == expected


@pytest.mark.slow
def test_deterministic_switch_too_late_is_a_clear_error():
    code = ("import tensorflow as tf\ntf.constant(1.0) + 1\n"
            "import cellcutter_nb.backend")
    out = _probe("1", code)
    assert out.returncode != 0
    assert "CELLCUTTER_NB_DETERMINISTIC=1 must be set before TensorFlow runs" in out.stderr


@pytest.mark.slow
def test_smoke_training_repeats_across_processes():
    # the standard: a smoke run gives the same numbers twice on CPU (2 threads here), for
    # the paper's preset and fast (both in one process: each process pays its imports once)
    code = ("from cellcutter_nb.experiments import model_cache\n"
            "from cellcutter_nb.config import get_preset, get_profile\n"
            "for preset in ('paper', 'fast'):\n"
            "    r = model_cache.fit(get_profile('smoke'), get_preset(preset), 0, ('fl', 'nuc'),"
            " seed=0, cache_dir=False)\n"
            "    print(preset, repr(r.history['loss'].tolist() + [r.scores['miou']]))")
    outs = [_probe(None, code) for _ in range(2)]
    assert all(o.returncode == 0 for o in outs), outs[0].stderr[-2000:]
    first, second = (o.stdout.strip().splitlines()[-2:] for o in outs)
    assert [line.split()[0] for line in first] == ["paper", "fast"]
    assert first == second
