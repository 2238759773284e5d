"""Latent-trait probes: does a model still *encode* the pretrained model's trait decision?

A pruned-and-retrained model that no longer acts on the trait may still carry it in its hidden
activations, ready to be relearned. A linear probe on the model's hidden layers (all of them,
concatenated: the trait may have moved) is trained to predict, on the recorded states, what the
*pretrained* model decided there (the trait label of its own rollouts) and whether the trait was
possible (the opportunity label). AUROC on held-out rows says how linearly readable each still
is. The control model — never paid for the trait, but competent at the task — is the reference:
state features such as "a rival is near" predict the decision in any competent agent, so only an
encoding well above the control's counts as a latent trait.
"""

from __future__ import annotations

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler
from torch import nn

from marlmod.record import activations_on

TEST_SHARE = 0.3  # rows held out to score each probe
PROBE_C = 1.0  # inverse L2 strength of the logistic probe on standardised activations
MIN_CLASS_ROWS = 10  # fewer rows than this in a class gives an AUROC that is mostly noise


def hidden_activations(policy: nn.Module, layers: list[str], obs: np.ndarray) -> np.ndarray:
    """The policy's hidden layers on ``obs``, side by side: ``[rows, total units]``."""
    return np.concatenate([activations_on(policy, layer, obs) for layer in layers], axis=1)


def probe_auroc(features: np.ndarray, labels: np.ndarray, seed: int) -> float:
    """Held-out AUROC of a balanced logistic probe for ``labels`` (NaN if a class is too rare
    to score)."""
    labels = np.asarray(labels, dtype=bool)
    if min(int(labels.sum()), int((~labels).sum())) < MIN_CLASS_ROWS:
        return float("nan")
    x_train, x_test, y_train, y_test = train_test_split(
        features.astype(np.float64),
        labels,
        test_size=TEST_SHARE,
        random_state=seed,
        stratify=labels,
    )
    scaler = StandardScaler().fit(x_train)
    probe = LogisticRegression(C=PROBE_C, class_weight="balanced", max_iter=2000)
    probe.fit(scaler.transform(x_train), y_train)
    return float(roc_auc_score(y_test, probe.decision_function(scaler.transform(x_test))))


def latent_trait(
    policy: nn.Module,
    layers: list[str],
    obs: np.ndarray,
    trait: np.ndarray,
    opportunity: np.ndarray,
    seed: int,
) -> dict[str, float]:
    """How well ``policy``'s hidden layers predict the pretrained decision and the opportunity."""
    features = hidden_activations(policy, layers, obs)
    return {
        "trait_auroc": probe_auroc(features, trait, seed),
        "opportunity_auroc": probe_auroc(features, opportunity, seed),
    }
