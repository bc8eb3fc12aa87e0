r"""The training command lines, on shared run plumbing (:mod:`~plstm_geometric.train.runs`):

* ``python -m plstm_geometric.train`` (:mod:`~plstm_geometric.train.graph`, console script ``plstm-train``):
  graph property prediction; with no arguments pLSTM on the embedded, offline ``nci-tpsa`` set;
* ``python -m plstm_geometric.train.vision`` (``plstm-train-vision``): the APE image task;
* ``python -m plstm_geometric.train.sequence`` (``plstm-train-sequence``): the long-range sign task.

In all three ``--out`` is the run folder (``results.json`` and the rest go into it), ``--threads``
defaults to 1 and ``--help`` lists every default. The submodules are not imported here, so that each
command loads only what it needs.
"""
