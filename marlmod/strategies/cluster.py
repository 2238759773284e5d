"""The ``cluster`` strategy: prune whole weight-graph clusters, the most trait-associated first.

The clustering itself — the weight graph, spectral clusters, the n-cut and its test against
shuffled copies — is ``marlmod.clusterability``; this module only turns clusters into unit scores.
"""

from __future__ import annotations

import numpy as np

from marlmod.clusterability import (
    N_CLUSTERS,
    layer_offsets,
    policy_graph_paths,
    policy_weights,
    spectral_clusters,
    weight_graph,
)
from marlmod.errors import MarlmodError
from marlmod.strategies.common import layer_slices, need, trait_contrast
from marlmod.strategies.evidence import Evidence


def cluster(ev: Evidence, rng: np.random.Generator) -> np.ndarray:
    """Prune whole weight-graph clusters: the cluster most associated with the trait first.

    Clusters the whole policy network (observation inputs → hidden layers → action logits) into
    ``N_CLUSTERS`` with normalised spectral clustering, then ranks clusters by the mean signed
    Cohen's d (trait vs non-trait rows) of their units in ``ev.layer`` (a CNN's channels are
    nodes too, ``marlmod.clusterability``; over ``all_hidden``, the units of every hidden
    layer). Every unit of the top cluster outranks every unit of the next, and so on, so a
    prune removes whole clusters as far as the fraction allows; where the fraction ends inside
    a cluster, its units are taken in order of their own d. Units isolated in the graph
    (already pruned) rank last. This tests the module-pruning premise directly: if the trait
    lives in a weight module, removing that module should remove it. Without clusterability
    (see ``marlmod.clusterability``) it degrades towards a coarse ``contrast``.
    """
    policy = need(ev, "policy", "cluster")
    paths = policy_graph_paths(policy)
    weights = policy_weights(policy)
    offsets = layer_offsets(weights)
    graph = weight_graph(weights)
    labels = spectral_clusters(graph, N_CLUSTERS, int(rng.integers(2**31 - 1)))
    unit_labels = []
    for layer in layer_slices(ev, "cluster"):
        if layer.wiring.producer not in paths[:-1]:
            raise MarlmodError(f"the cluster strategy's graph does not cover {layer.path!r}")
        node_layer = paths.index(layer.wiring.producer) + 1
        unit_labels.append(labels[offsets[node_layer] : offsets[node_layer + 1]])
    unit_labels = np.concatenate(unit_labels)
    if len(unit_labels) != ev.units:
        raise MarlmodError(f"{ev.layer} has {len(unit_labels)} units; evidence has {ev.units}")
    d = trait_contrast(ev.acts, ev.trait)
    present = [c for c in np.unique(unit_labels) if c >= 0]
    ranked = sorted(present, key=lambda c: -d[unit_labels == c].mean())
    rank = np.array([ranked.index(c) if c >= 0 else len(ranked) for c in unit_labels])
    span = 2 * float(np.abs(d).max()) + 1
    return -rank * span + d
