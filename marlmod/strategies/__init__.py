"""Locating strategies, grouped by what they read; ``marlmod.locate.STRATEGIES`` is the registry.

- ``activations``: recorded activations and labels only (selective, opportunity, probe, control,
  activation magnitude).
- ``weights``: the policy's weights and gradients (attribution, weight magnitude, Wanda).
- ``per_weight``: a score per weight from a strategy's unit scores (``<strategy>~weights`` cells).
- ``marlmod.clusterability``: whole-network weight-graph clusters (the ``cluster`` strategy).
"""
