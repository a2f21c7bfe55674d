"""Import Keras once, quietly, and report which backend and device run it.

TensorFlow writes C++ log banners ("oneDNN custom operations are on", CPU feature
notes) straight to file descriptor 2 while it is imported; in Jupyter they land in
every executed notebook. ``TF_ENABLE_ONEDNN_OPTS=0`` would silence them too, but
it changes the numerics, so instead the import runs with fd 2 pointed at
``/dev/null``; Python exceptions still propagate. Modules that need Keras do
``from .backend import keras``; ``import cellcutter_nb`` itself never imports it.

Repeatability: seeded runs (:func:`cellcutter_nb.core.model.seed_everything`) repeat bit for
bit on one CPU thread. With two or more threads TensorFlow's CPU reductions (with or
without oneDNN) add in an order that varies from run to run; the first loss differs in
the 4th digit and early training amplifies it (quick profile, FL+Nuc, replicate 2: mIOU
0.17-0.32 in four identical runs). ``CELLCUTTER_NB_DETERMINISTIC=1`` set before the
import runs TensorFlow on one thread (two identical runs: 0.2430 both times), at ~1.6×
the time on 2 cores.

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

#: One thread for TensorFlow, so that seeded runs repeat bit for bit (module docstring).
DETERMINISTIC = os.environ.get("CELLCUTTER_NB_DETERMINISTIC", "") in ("1", "true")
if DETERMINISTIC and keras.backend.backend() == "tensorflow":
    try:
        tensorflow.config.threading.set_intra_op_parallelism_threads(1)
        tensorflow.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError as err:  # TensorFlow already ran an op in this process
        raise ValueError("CELLCUTTER_NB_DETERMINISTIC=1 must be set before TensorFlow runs "
                         "anything: import cellcutter_nb modules first, or set it in the "
                         f"environment of a fresh process ({err}).") from None


@contextlib.contextmanager
def dtype_policy(policy: str):
    """Build models under a Keras dtype policy (e.g. ``"mixed_bfloat16"``) inside the block;
    the previous global policy is restored after it, also on error.

    Eq. 1 stays float32 under any policy (:func:`cellcutter_nb.core.loss.cutter_loss` casts the
    logits). ``benchmarks/mixed_precision.py`` measures speed and accuracy.

    Examples
    --------
    >>> with dtype_policy("mixed_bfloat16"):
    ...     inside = keras.config.dtype_policy().name
    >>> inside, keras.config.dtype_policy().name
    ('mixed_bfloat16', 'float32')
    """
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(policy)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


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


__all__ = ["DETERMINISTIC", "keras", "backend_name", "device_description", "dtype_policy"]
