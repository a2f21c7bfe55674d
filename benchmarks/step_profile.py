"""Where one CPU training step's time goes: the step taken apart, in CPU seconds.

One batch of ``--patches`` real patches (a 640² window of ``make_field(0, 1024)``, as
``peer_speed.py`` draws them; fl + nuc, true mask, ``original_code`` preset) is trained
by variants of the same UNet step, each built in this process and timed by its CPU
time (``time.process_time``: the figure a shared machine's load disturbs least):

* ``keras`` — ``train_on_batch`` of :class:`~cellcutter_nb.core.step.CutterModel`, the
  step ``train()`` runs (TensorFlow graph, no XLA);
* ``function`` — the same forward, Eq. 1, gradient and Adam update in one
  ``tf.function`` (no Keras trainer around it);
* ``eager`` — that function run eagerly, as the released code runs its step;
* ``xla`` — that function compiled with XLA (``jit_compile=True``);
* ``no_norm`` — ``keras`` with the UNet's BatchNormalization layers left out (what
  BatchNorm costs);
* ``unet`` — the ``function`` step with ``mean(logits)`` for Eq. 1 (what the loss costs);
* ``loss`` — Eq. 1 and its gradient alone, on fixed logits.

Each variant runs once untimed (tracing), then ``--repeats`` rounds of one call each,
the variants in turn; medians. ``--policy mixed_bfloat16`` builds every variant under
that Keras dtype policy.

Run: ``python benchmarks/step_profile.py --width 32 --patches 96`` (a few minutes on 2
cores; ``--variants keras no_norm`` for a subset).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np

VARIANTS = ("keras", "function", "eager", "xla", "no_norm", "unet", "loss")


def window(n: int):
    """The first ``n`` patches of a 640² window of the 1024² field, as an AreaBatch
    (``peer_speed.window_batch``, unpadded)."""
    from peer_speed import window_batch

    from cellcutter_nb import config
    from cellcutter_nb.core.patches import extract_patches
    from cellcutter_nb.data import synth

    field = synth.make_field(seed=0, shape=1024)
    ps = extract_patches(field, ("fl", "nuc"), config.get_preset("original_code"))
    return ps, window_batch(ps, field.mask.astype(np.float32), np.array([200, 150]), 640,
                            pad_multiple=1, limit=n)


def unet_without_norm(width: int, seed: int):
    """The UNet of :func:`~cellcutter_nb.core.model.build_unet` with no BatchNorm."""
    from cellcutter_nb.core import model

    block = model._block
    model._block = lambda x, filters, name, seed, index, norm: _convs(x, filters, name)
    try:
        return model.build_unet(3, width, 4, 64, seed=seed)
    finally:
        model._block = block


def _convs(x, filters: int, name: str):
    from cellcutter_nb.backend import keras

    for tag in ("a", "b"):
        x = keras.layers.Conv2D(filters, 3, padding="same", activation="relu",
                                name=f"{name}_conv_{tag}")(x)
    return x


def make_variant(kind: str, batch, width: int):
    """A no-argument callable that runs one step of variant ``kind`` (and waits for it)."""
    import tensorflow as tf

    from cellcutter_nb import config
    from cellcutter_nb.backend import keras
    from cellcutter_nb.core.loss import cutter_loss
    from cellcutter_nb.core.model import build_unet
    from cellcutter_nb.core.step import compile_step

    preset = config.get_preset("original_code")
    weights = preset.loss_weights()
    x, y = tf.constant(batch.patches), {k: tf.constant(v) for k, v in batch.targets().items()}
    if kind in ("keras", "no_norm"):
        unet = build_unet(3, width, 4, 64, seed=0) if kind == "keras" else \
            unet_without_norm(width, 0)
        model = compile_step(unet, preset, with_mask=True, eager=False)
        return lambda: model.train_on_batch(batch.patches, batch.targets())
    if kind == "loss":
        logits = tf.Variable(tf.random.normal((len(batch.valid), 64, 64, 1)))

        @tf.function
        def loss_step():
            with tf.GradientTape() as tape:
                total = cutter_loss(logits, y["offsets"], y["valid"], y["mask"], weights).total
            return tape.gradient(total, logits)
        return lambda: loss_step().numpy()
    unet = build_unet(3, width, 4, 64, seed=0)
    opt = keras.optimizers.Adam(preset.learning_rate)
    opt.build(unet.trainable_variables)

    def step():
        with tf.GradientTape() as tape:
            out = unet(x, training=True)
            total = tf.reduce_mean(out) if kind == "unet" else cutter_loss(
                out, y["offsets"], y["valid"], y["mask"], weights).total
        opt.apply(tape.gradient(total, unet.trainable_variables), unet.trainable_variables)
        return total
    if kind != "eager":
        step = tf.function(step, jit_compile=kind == "xla")
    return lambda: float(step())


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=int, default=32)
    parser.add_argument("--patches", type=int, default=96)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--policy", default="float32")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    args = parser.parse_args(argv)
    from cellcutter_nb.backend import keras

    _, batch = window(args.patches)
    keras.config.set_dtype_policy(args.policy)
    steps = {kind: make_variant(kind, batch, args.width) for kind in args.variants}
    for step in steps.values():
        step()  # tracing
    cpu: dict[str, list[float]] = {kind: [] for kind in steps}
    for _ in range(args.repeats):
        for kind, step in steps.items():
            t0 = time.process_time()
            step()
            cpu[kind].append(time.process_time() - t0)
    n = len(batch.valid)
    out = {kind: statistics.median(v) for kind, v in cpu.items()}
    print(f"width {args.width}, {n} patches, {args.policy}, median of {args.repeats}; "
          f"load {os.getloadavg()[0]:.1f}")
    print("| variant | CPU s/step | patches/CPU-s | × keras |\n|---|---|---|---|")
    for kind, s in out.items():
        rel = f"{s / out['keras']:.2f}" if "keras" in out else ""
        print(f"| {kind} | {s:.2f} | {n / s:.1f} | {rel} |")
    return out


if __name__ == "__main__":
    main()
