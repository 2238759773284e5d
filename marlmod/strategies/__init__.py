"""Every locating strategy lives here, behind one registry (``registry.STRATEGIES``).

- ``registry``: each strategy's name, summary, requirements, the layer kinds it can rank and where
  its scorer is (torch-free: config validation reads it);
- ``evidence``: ``Evidence``, what a strategy may read about one layer;
- ``activations``: recorded activations and labels only (contrast, selective, opportunity, probe,
  control, activation magnitude) and the ``random`` baseline;
- ``weights``: the policy's weights and gradients (attribution, weight magnitude, Wanda);
- ``cluster``: whole weight-graph clusters (the clustering is ``marlmod.clusterability``);
- ``routed``: the units gradient routing put the trait in (routing is ``marlmod.routing``);
- ``per_weight``: a score per weight from a strategy's unit scores (``<strategy>~weights`` cells);
- ``common``, ``moments``: shared helpers (trait groups, Cohen's d, chunked column statistics).

Scoring a layer and choosing its top units is the locate stage, ``marlmod.locate``.
"""
