"""marlmod: train misbehaviour into multi-agent RL agents, locate it, prune it, and measure
whether it comes back under cooperative retraining and how much capability is kept."""

__version__ = "0.1.0"
