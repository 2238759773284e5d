"""Filan et al.'s clusterability on graphs whose answer is known by hand, and the ``cluster``
strategy on a hand-wired modular policy."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from sklearn.metrics import adjusted_rand_score
from stable_baselines3.common.policies import ActorCriticPolicy
from torch import nn

from marlmod.clusterability import (
    clusterability,
    layer_offsets,
    ncut,
    policy_linear_paths,
    policy_weights,
    shuffle_weights,
    spectral_clusters,
    weight_graph,
)
from marlmod.errors import MarlmodError
from marlmod.locate import score_units
from marlmod.strategies.evidence import Evidence

# inputs a, b → outputs c, d; strong a–c and b–d, weak crossings
SQUARE = [np.array([[2.0, -1.0], [1.0, 2.0]])]  # rows = outputs c, d; columns = inputs a, b


def test_weight_graph_is_symmetric_with_absolute_weights_between_layers() -> None:
    graph = weight_graph(SQUARE)
    assert np.array_equal(graph, graph.T)
    assert graph[2, 0] == 2.0 and graph[2, 1] == 1.0 and graph[0, 1] == 0.0  # c–a, c–b, a–b


def test_ncut_matches_a_hand_computation() -> None:
    # every node has degree 3; {a, c} is cut by a–d (1) and b–c (1): 2/6 per cluster
    graph = weight_graph(SQUARE)
    assert ncut(graph, np.array([0, 1, 0, 1])) == pytest.approx(2 / 6 + 2 / 6)
    assert ncut(graph, np.array([0, 0, 1, 1])) == pytest.approx(6 / 6 + 6 / 6)  # inputs | outputs
    assert ncut(graph, np.zeros(4, int)) == 0.0


def test_spectral_clustering_finds_the_lowest_ncut_split() -> None:
    labels = spectral_clusters(weight_graph(SQUARE), 2, seed=0)
    assert labels[0] == labels[2] != labels[1] == labels[3]


def blocks(sizes: list[int], k: int, seed: int, leak: float = 0.01) -> tuple[list, np.ndarray]:
    """An MLP made of ``k`` independent sub-networks (plus a faint leak between them), and the
    block of every node."""
    gen = np.random.default_rng(seed)
    block_of = [np.arange(n) * k // n for n in sizes]
    weights = []
    for n_in, n_out, b_in, b_out in zip(sizes, sizes[1:], block_of, block_of[1:], strict=False):
        same = b_out[:, None] == b_in[None, :]
        w = gen.normal(size=(n_out, n_in))
        weights.append(np.where(same, 1.0 + np.abs(w), leak * w))
    return weights, np.concatenate(block_of)


def test_a_block_diagonal_net_is_more_clusterable_than_its_shuffles() -> None:
    weights, truth = blocks([8, 8, 8, 4], k=4, seed=0)
    result = clusterability(weights, np.random.default_rng(0), n_clusters=4, n_shuffles=8)
    assert adjusted_rand_score(truth, result.labels) == 1.0  # the blocks are the clusters
    assert result.ncut < result.shuffled_ncuts.min()
    assert result.percentile == 0.0 and result.z_score < -3


def test_shuffling_keeps_each_layers_weights_and_zeros() -> None:
    weights, _ = blocks([6, 6, 3], k=3, seed=1, leak=0.0)
    for before, after in zip(
        weights, shuffle_weights(weights, np.random.default_rng(0)), strict=True
    ):
        assert np.array_equal(before == 0, after == 0)
        assert np.array_equal(np.sort(before.ravel()), np.sort(after.ravel()))


def test_isolated_nodes_are_left_out_of_clusters() -> None:
    weights, _ = blocks([4, 4, 2], k=2, seed=0)
    weights[0][1] = 0.0  # hidden unit 1 pruned: no incoming…
    weights[1][:, 1] = 0.0  # …and no outgoing weights
    labels = spectral_clusters(weight_graph(weights), 2, seed=0)
    assert labels[layer_offsets(weights)[1] + 1] == -1 and (np.delete(labels, 5) >= 0).all()


def test_layers_that_do_not_chain_fail() -> None:
    with pytest.raises(MarlmodError, match="expected \\[out, 3\\]"):
        weight_graph([np.ones((3, 2)), np.ones((2, 4))])


# ---------------------------------------------------------------- SB3 policies and the strategy
LAYER = "mlp_extractor.policy_net.3"


def modular_policy() -> ActorCriticPolicy:
    """obs 8 → 8 → 8 → 4 actions made of four 2-2-2-1 modules."""
    policy = ActorCriticPolicy(
        gym.spaces.Box(0.0, 1.0, (8,)),
        gym.spaces.Discrete(4),
        lr_schedule=lambda _: 1e-3,
        net_arch={"pi": [8, 8], "vf": [4]},
        activation_fn=nn.ReLU,
    )
    weights, _ = blocks([8, 8, 8, 4], k=4, seed=0)
    linears = dict(policy.named_modules())
    with torch.no_grad():
        for path, w in zip(policy_linear_paths(policy), weights, strict=True):
            linears[path].weight.copy_(torch.as_tensor(w))
    return policy


def test_policy_weights_follow_the_policy_net_input_to_logits() -> None:
    policy = modular_policy()
    assert policy_linear_paths(policy) == [
        "mlp_extractor.policy_net.0",
        "mlp_extractor.policy_net.2",
        "action_net",
    ]
    assert [w.shape for w in policy_weights(policy)] == [(8, 8), (8, 8), (4, 8)]


def test_cluster_strategy_prunes_the_trait_module_whole() -> None:
    """Unit 0 alone is the most trait-selective, but its module-mate unit 1 falls quiet on the
    trait; units 4–5 form the module that, as a whole, fires for it."""
    gen = np.random.default_rng(0)
    trait = gen.random(600) < 0.3
    acts = np.maximum(gen.normal(size=(600, 8)), 0.0)
    acts[:, 0] += 1.5 * trait
    acts[:, 1] *= ~trait
    acts[:, [4, 5]] += 1.0 * trait[:, None]
    ev = Evidence(acts=acts, trait=trait, policy=modular_policy(), layer=LAYER)
    assert int(np.argmax(score_units("contrast", ev, gen))) == 0
    scores = score_units("cluster", ev, np.random.default_rng(0))
    order = np.argsort(-scores)
    assert set(order[:2]) == {4, 5}  # the whole module first…
    assert list(order[2:4]) == [0, 1]  # …then the next module, best unit first
