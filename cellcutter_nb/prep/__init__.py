"""What the method derives from the images before any network (layer 2).

* :mod:`~cellcutter_nb.prep.markers` — nuclei and markers (CellProfiler's recipe, DoG/DoH);
* :mod:`~cellcutter_nb.prep.marker_matching` — pairing found with true markers (15 µm);
* :mod:`~cellcutter_nb.prep.mask` — the foreground mask M (graph cut, scribbles → forest);
* :mod:`~cellcutter_nb.prep.scribbles` — stand-in scribbles drawn from the ground truth;
* :mod:`~cellcutter_nb.prep.baseline` — the references: CellProfiler's secondary objects
  and the position-only (nearest-marker) partition.
"""
