"""Import Keras once, quietly, and report which backend and device run it.

TensorFlow writes C++ log banners ("oneDNN custom operations are on", CPU feature
notes) straight to file descriptor 2 while it is imported; in Jupyter they land in
every executed notebook. ``TF_ENABLE_ONEDNN_OPTS=0`` would silence them too, but
it changes the numerics, so instead the import runs with fd 2 pointed at
``/dev/null``; Python exceptions still propagate. Modules that need Keras do
``from .backend import keras``; ``import cellcutter_nb`` itself never imports it.

Examples
--------
>>> from cellcutter_nb.backend import keras, backend_name
>>> backend_name() in ("tensorflow", "jax", "torch", "numpy")
True
"""

from __future__ import annotations

import contextlib
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


@contextlib.contextmanager
def _quiet_stderr_fd():
    """Point file descriptor 2 at /dev/null inside the block (C-level output only)."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no real fd 2 (embedded interpreters): do nothing
        yield
        return
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(null)


with _quiet_stderr_fd():
    import keras  # noqa: E402

    if keras.backend.backend() == "tensorflow":
        import tensorflow  # (its device set-up also logs to fd 2)

        # the Python-side logger warns about retracing; shapes here are bucketed on purpose
        tensorflow.get_logger().setLevel("ERROR")


def backend_name() -> str:
    """The active Keras backend (``KERAS_BACKEND``; TensorFlow by default)."""
    return keras.backend.backend()


def device_description() -> str:
    """Human-readable accelerator description: a GPU name, or ``"CPU"``."""
    name = backend_name()
    if name == "jax":
        import jax

        devices = jax.devices()
        return ", ".join(sorted({d.device_kind for d in devices})) or "CPU"
    if name == "tensorflow":
        import tensorflow as tf

        gpus = tf.config.list_physical_devices("GPU")
        if gpus:
            details = tf.config.experimental.get_device_details(gpus[0])
            return details.get("device_name", "GPU")
    return "CPU"


__all__ = ["keras", "backend_name", "device_description"]
