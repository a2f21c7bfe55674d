"""What a user touches (layer 5, the top).

* :mod:`~cellcutter_nb.app.pipeline` — ``segment()``: markers → mask → training → labels;
* :mod:`~cellcutter_nb.app.cli` — ``python -m cellcutter_nb`` (``segment``, ``reproduce``,
  ``grid``: :mod:`~cellcutter_nb.app.cli_grid`);
* :mod:`~cellcutter_nb.app.files` — ``segment_files()``, the ``segment`` command as a function,
  with :mod:`~cellcutter_nb.app.cli_checks` (its checks before training),
  :mod:`~cellcutter_nb.app.interrupt` (Ctrl-C / SIGTERM) and
  :mod:`~cellcutter_nb.app.model_file` (a saved UNet that records its channels);
* :mod:`~cellcutter_nb.app.outputs` — label TIFF, overlay PNG, per-cell CSV, written whole;
* :mod:`~cellcutter_nb.app.widgets` — the explorer of notebook 10;
* :mod:`~cellcutter_nb.app.figures` — the house style of every figure.
"""
