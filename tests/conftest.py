"""Shared fixtures: synthetic fields are generated once per test session."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


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
