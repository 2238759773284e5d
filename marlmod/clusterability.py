"""Clusterability of an MLP's weight graph (Filan et al. 2021, "Clusterability in Neural Networks").

The network is a graph: one node per neuron of every layer (inputs, hidden units, outputs), an
edge between neurons of adjacent layers weighted by |w|. Normalised spectral clustering splits
it into k clusters, scored by the normalised cut

    n-cut = Σ_i cut(X_i, X̄_i) / vol(X_i)

(cut = total edge weight leaving the cluster, vol = total degree inside it); lower = more
modular. Whether a net is *more* clusterable than chance is judged against copies whose weights
were shuffled within each layer, which keeps every layer's weight distribution but destroys any
structure: we report the n-cut, the shuffled n-cuts, its percentile among them and a z-score.
Filan et al. find ordinary trained MLPs only slightly more clusterable than their shuffles, so
report the z-score whatever it says.

Weight matrices use torch's convention, ``[out_features, in_features]``, listed input → output.
The ``cluster`` locating strategy (``marlmod.strategies.cluster``) prunes whole clusters of the
policy network at once.

A CNN policy's conv layers join the graph with one node per *channel* (the unit a prune removes):
observation channels → each conv layer's channels → the dense units → the logits. The edge
between channels is the L1 norm of the kernel slice that connects them, ``Σ|W[out, in, :, :]|``,
and the edge from the last conv channel c to dense unit j sums |w| over c's positions in the
flattened input, ``Σ_p |W[j, c·P + p]|`` — the total weight through which one node can drive the
other (Filan et al. build CNN graphs from channels and kernel norms too). Shuffles permute these
edges within a layer, i.e. whole kernel slices, so a channel's kernel is never torn apart.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from sklearn.cluster import SpectralClustering
from torch import nn

from marlmod.errors import MarlmodError
from marlmod.layers import CONV_NET, POLICY_NET
from marlmod.prune import HEAD_AFTER

N_CLUSTERS = 4  # the smallest k Filan et al. use; ≈ a quarter of each layer per cluster


# ---------------------------------------------------------------- the graph
def layer_sizes(weights: list[np.ndarray]) -> list[int]:
    """Neurons per layer (inputs first); fails if consecutive matrices do not chain."""
    if not weights:
        raise MarlmodError("a network needs at least one weight matrix")
    sizes = [weights[0].shape[1]]
    for i, w in enumerate(weights):
        if w.ndim != 2 or w.shape[1] != sizes[-1]:
            raise MarlmodError(f"weight {i} has shape {w.shape}; expected [out, {sizes[-1]}]")
        sizes.append(w.shape[0])
    return sizes


def layer_offsets(weights: list[np.ndarray]) -> list[int]:
    """Index of each layer's first node in the graph (plus the node count at the end)."""
    return [0, *np.cumsum(layer_sizes(weights)).tolist()]


def weight_graph(weights: list[np.ndarray]) -> np.ndarray:
    """Symmetric adjacency matrix over all neurons, edge weight |w| between adjacent layers."""
    offsets = layer_offsets(weights)
    adjacency = np.zeros((offsets[-1], offsets[-1]))
    for i, w in enumerate(weights):
        ins, outs = slice(offsets[i], offsets[i + 1]), slice(offsets[i + 1], offsets[i + 2])
        adjacency[outs, ins] = np.abs(w)
        adjacency[ins, outs] = np.abs(w).T
    return adjacency


# ---------------------------------------------------------------- clustering and n-cut
def ncut(adjacency: np.ndarray, labels: np.ndarray) -> float:
    """Σ over clusters of cut / volume; nodes labelled −1 (isolated) are left out."""
    total = 0.0
    degree = adjacency.sum(axis=1)
    for c in np.unique(labels[labels >= 0]):
        inside = labels == c
        volume = degree[inside].sum()
        if volume > 0:
            total += adjacency[inside][:, ~inside].sum() / volume
    return float(total)


def spectral_clusters(adjacency: np.ndarray, n_clusters: int, seed: int) -> np.ndarray:
    """Normalised spectral clustering of the graph; isolated nodes (e.g. pruned units, degree 0)
    carry no edge to cluster by and get label −1."""
    connected = adjacency.sum(axis=1) > 0
    if connected.sum() < n_clusters:
        raise MarlmodError(f"only {int(connected.sum())} connected nodes for {n_clusters} clusters")
    labels = np.full(len(adjacency), -1)
    with warnings.catch_warnings():  # a disconnected graph is a legitimate, very modular answer
        warnings.filterwarnings("ignore", message="Graph is not fully connected")
        labels[connected] = SpectralClustering(
            n_clusters, affinity="precomputed", random_state=seed, assign_labels="kmeans"
        ).fit_predict(adjacency[connected][:, connected])
    return labels


def shuffle_weights(weights: list[np.ndarray], rng: np.random.Generator) -> list[np.ndarray]:
    """Each layer's non-zero weights permuted among its non-zero positions.

    Keeping zeros in place (as Filan et al. do for pruned nets) means a pruned unit stays pruned
    in the shuffles, so pruning by itself does not count as structure.
    """
    shuffled = []
    for w in weights:
        out = np.array(w, dtype=np.float64)
        nonzero = out != 0
        out[nonzero] = rng.permutation(out[nonzero])
        shuffled.append(out)
    return shuffled


@dataclass(frozen=True)
class Clusterability:
    """One network's n-cut against its within-layer shuffles (lower n-cut = more modular)."""

    ncut: float
    shuffled_ncuts: np.ndarray
    percentile: float  # % of shuffles with a lower n-cut (ties count half): low = clusterable
    z_score: float  # (n-cut − shuffled mean) / shuffled std: negative = clusterable
    labels: np.ndarray  # cluster of every node, layers concatenated input → output


def clusterability(
    weights: list[np.ndarray],
    rng: np.random.Generator,
    n_clusters: int = N_CLUSTERS,
    n_shuffles: int = 20,
) -> Clusterability:
    """Cluster the network and its ``n_shuffles`` shuffles; compare their n-cuts."""

    def cut_of(ws: list[np.ndarray]) -> tuple[float, np.ndarray]:
        adjacency = weight_graph(ws)
        labels = spectral_clusters(adjacency, n_clusters, int(rng.integers(2**31 - 1)))
        return ncut(adjacency, labels), labels

    observed, labels = cut_of(weights)
    shuffled = np.array([cut_of(shuffle_weights(weights, rng))[0] for _ in range(n_shuffles)])
    below, ties = (shuffled < observed).mean(), (shuffled == observed).mean()
    spread = shuffled.std()
    z = (observed - shuffled.mean()) / spread if spread > 0 else 0.0
    return Clusterability(observed, shuffled, float(100 * (below + ties / 2)), float(z), labels)


# ---------------------------------------------------------------- SB3 policies
def policy_linear_paths(policy: nn.Module, net: str = POLICY_NET) -> list[str]:
    """Module paths of the Linear layers of an SB3 policy net, input → output, head included."""
    modules = dict(policy.named_modules())
    if net not in modules:
        raise MarlmodError(f"policy has no {net!r}")
    children = modules[net].named_children()
    body = [f"{net}.{name}" for name, m in children if isinstance(m, nn.Linear)]
    head = HEAD_AFTER.get(net)
    if head is None or not isinstance(modules.get(head), nn.Linear):
        raise MarlmodError(f"cannot find the head Linear after {net!r}")
    return [*body, head]


def policy_graph_paths(policy: nn.Module, net: str = POLICY_NET) -> list[str]:
    """The layers whose weights make the graph, input → output: a CNN policy's Conv2d layers
    (for the policy net), then ``policy_linear_paths``."""
    modules = dict(policy.named_modules())
    convs = []
    if net == POLICY_NET and CONV_NET in modules:
        children = modules[CONV_NET].named_children()
        convs = [f"{CONV_NET}.{name}" for name, m in children if isinstance(m, nn.Conv2d)]
    return [*convs, *policy_linear_paths(policy, net)]


def policy_weights(policy: nn.Module, net: str = POLICY_NET) -> list[np.ndarray]:
    """The graph's weight matrices (``[out, in]`` nodes, input → action logits) as float64: a
    Linear's weights as they are, a conv layer's channel-to-channel kernel norms, and the first
    dense layer of a CNN summed over each channel's positions (module docstring)."""
    modules = dict(policy.named_modules())
    weights: list[np.ndarray] = []
    for path in policy_graph_paths(policy, net):
        w = modules[path].weight.detach().cpu().numpy().astype(np.float64)
        if w.ndim == 4:  # [out, in, kh, kw] -> kernel slice norms
            w = np.abs(w).sum(axis=(2, 3))
        elif weights and w.shape[1] != weights[-1].shape[0]:  # reads a flattened conv stack
            channels = weights[-1].shape[0]
            w = np.abs(w).reshape(len(w), channels, -1).sum(axis=2)
        weights.append(w)
    return weights
