"""The kinds of policy layer marlmod locates in, and the action head's module path.

Torch-free on purpose: config validation (``marlmod validate``) refuses a strategy that cannot
rank a layer kind without loading the network code.
"""

from __future__ import annotations

from enum import Enum

ACTION_HEAD = "action_net"  # the policy's logits: prunable only where a config asks for it


class LayerKind(Enum):
    """What a strategy ranks: the units of a hidden dense layer or the logits of the action head.

    A layer kind is named by what it is, so refusals read naturally ("cannot rank the action
    head"). A new kind (e.g. the channels of a convolutional layer) is one more member here, added
    to the ``layer_kinds`` of each strategy that can rank it; every other registry entry must then
    say why it cannot (its ``layer_limit``), or the registry refuses to import.
    """

    HIDDEN = "a hidden dense layer"
    ACTION_HEAD = "the action head"


def layer_kind(path: str) -> LayerKind:
    """The kind of the layer at module path ``path`` of an SB3 policy."""
    return LayerKind.ACTION_HEAD if path == ACTION_HEAD else LayerKind.HIDDEN
