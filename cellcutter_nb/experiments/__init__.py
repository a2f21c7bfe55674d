"""The paper's experiments, run on cached models (layer 4).

* :mod:`~cellcutter_nb.experiments.model_cache` — each model trained once, cached on disk;
* :mod:`~cellcutter_nb.experiments.paper` — one function per experiment of the paper;
* :mod:`~cellcutter_nb.experiments.distributed` — the models of an experiment as tasks
  of a Dask graph (a local cluster, SLURM, one worker per GPU);
* :mod:`~cellcutter_nb.experiments.predicted_markers` — Fig. 5: markers from synthetic
  nucleus images;
* :mod:`~cellcutter_nb.experiments.report` — the paper's numbers beside ours, held / not held;
* :mod:`~cellcutter_nb.experiments.notebook` — a notebook's set-up and table writing;
* :mod:`~cellcutter_nb.experiments.reproduce` — every notebook under papermill, ``REPORT.md``.
"""
