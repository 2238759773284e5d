"""The kinds of policy layer marlmod locates in, and how a layer is named in a config.

Torch-free on purpose: config validation (``marlmod validate``) refuses a strategy that cannot
rank a layer kind without loading the network code.

A layer is named by the module path of its activation in SB3's ``ActorCriticPolicy``:

- ``mlp_extractor.policy_net.<2i+1>``: the i-th hidden dense layer of the policy (its units);
- ``features_extractor.cnn.<2i+1>``: the i-th convolutional layer of a CNN policy
  (``network.kind: cnn``, ``marlmod.cnn``), whose units are its output *channels*;
- ``all_hidden`` (``ALL_HIDDEN``): the units of every hidden dense layer at once, ranked jointly;
- ``action_net`` (``ACTION_HEAD``): the logits, prunable only where a config asks for it.

``all_hidden`` ranks the units of all layers in one list and prunes the top ``prune.fraction`` of
*all* hidden units — not the same fraction of each layer. Where the trait lives is what locating
is asked to find: a joint ranking may put the whole prune in one layer or spread it, and the split
it chooses is itself a result (``prune.json`` stores it per layer); a fixed share per layer would
assume the answer. Scale-free scores (``contrast``'s Cohen's d, ``selective``'s ratio, the
probe's coefficients on standardised activations) compare across layers as they are; the
magnitude baselines compare as global magnitude pruning compares them. Conv channels are left
out: a channel and a unit are not the same amount of network, so "a fraction of all units" would
mean nothing across the two.
"""

from __future__ import annotations

from enum import Enum

ACTION_HEAD = "action_net"  # the policy's logits: prunable only where a config asks for it
ALL_HIDDEN = "all_hidden"  # every hidden dense layer of the policy, its units ranked jointly
CONV_NET = "features_extractor.cnn"  # the policy's own conv stack (marlmod.cnn.PlanesCNN)
POLICY_NET = "mlp_extractor.policy_net"  # the policy's dense hidden layers


class LayerKind(Enum):
    """What a strategy ranks: the units of a hidden dense layer, the channels of a convolutional
    layer, the units of every hidden dense layer at once, or the logits of the action head.

    A layer kind is named by what it is, so refusals read naturally ("cannot rank the action
    head"). A new kind is one more member here, added to the ``layer_kinds`` of each strategy
    that can rank it; every other registry entry must then say why it cannot (its
    ``layer_limit``), or the registry refuses to import.
    """

    HIDDEN = "a hidden dense layer"
    CONV_CHANNELS = "the channels of a convolutional layer"
    ALL_HIDDEN = "the units of all hidden dense layers at once"
    ACTION_HEAD = "the action head"


def layer_kind(path: str) -> LayerKind:
    """The kind of the layer named ``path`` (a module path of an SB3 policy, or ``all_hidden``)."""
    if path == ACTION_HEAD:
        return LayerKind.ACTION_HEAD
    if path == ALL_HIDDEN:
        return LayerKind.ALL_HIDDEN
    if path.startswith(f"{CONV_NET}."):
        return LayerKind.CONV_CHANNELS
    return LayerKind.HIDDEN
