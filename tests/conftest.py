"""Shared fixtures (synthetic fields generated once per session) and the ``slow`` marker.

``pytest -m "not slow"`` (``make test-fast``) is the inner loop: it leaves out the notebook
runs, training, subprocesses and the paper-sized field. Test functions carry
``@pytest.mark.slow`` themselves; here the doctests that train and the tests that need the
1750² field (~25 s to make) are marked.
"""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

#: Doctests (by module or object) that train a network or run an experiment.
SLOW_DOCTESTS = ("cellcutter_nb.core.nucleus.train_nucleus_model", "cellcutter_nb.core.supervised",
                 "cellcutter_nb.core.train", "cellcutter_nb.experiments.model_cache",
                 "cellcutter_nb.experiments.paper", "cellcutter_nb.experiments.predicted_markers",
                 "cellcutter_nb.experiments.distributed",
                 "cellcutter_nb.experiments.distributed.connect",
                 "cellcutter_nb.app.pipeline")
#: Fixtures whose first use costs more than a few seconds.
SLOW_FIXTURES = ("default_field", "default_stats")


def pytest_collection_modifyitems(config, items):
    """Mark the training doctests and the tests of the paper-sized field as slow."""
    for item in items:
        doctest_name = getattr(getattr(item, "dtest", None), "name", "")
        if doctest_name in SLOW_DOCTESTS or set(SLOW_FIXTURES) & set(item.fixturenames):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def default_field():
    """The default synthetic field (1750×1750, seed 0), as the realism tests require."""
    from cellcutter_nb.data.synth import make_field

    return make_field(seed=0)


@pytest.fixture(scope="session")
def default_stats(default_field):
    """Realism statistics of the default field."""
    from cellcutter_nb.data.realism import realism_stats

    return realism_stats(default_field)


@pytest.fixture(scope="session")
def quick_field():
    """A 640×640 synthetic field (seed 0): one paper-sized training area."""
    from cellcutter_nb.data.synth import make_field

    return make_field(seed=0, shape=640)
