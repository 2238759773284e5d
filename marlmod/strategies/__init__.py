"""Locating strategies, grouped by what they read; ``marlmod.locate.STRATEGIES`` is the registry.

- ``activations``: recorded activations and labels only (selective, opportunity, probe, control,
  activation magnitude).
- ``weights``: the policy's weights and gradients (attribution, weight magnitude, Wanda).
- ``marlmod.clusterability``: whole-network weight-graph clusters (the ``cluster`` strategy).
"""
