"""Where fields come from (layer 1, above the ground floor).

* :mod:`~cellcutter_nb.data.field` — the :class:`~cellcutter_nb.data.field.Field`: named
  channels, pixel size, optional ground truth;
* :mod:`~cellcutter_nb.data.tiffio` — your TIFFs in, saved fields out, the bundled example;
* :mod:`~cellcutter_nb.data.a431` — the paper's A431 release;
* :mod:`~cellcutter_nb.data.synth` (with ``synth_params``, ``synth_geometry``,
  ``synth_render``) — the synthetic benchmark with exact ground truth;
* :mod:`~cellcutter_nb.data.realism` — how realistic (and how hard) a field is.
"""
