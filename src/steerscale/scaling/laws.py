"""The functional forms a scaling fit compares, and the paper's law with its published constants."""

from __future__ import annotations

import numpy as np

PAPER = {"a": 0.081, "b": 2.4, "c": 0.42}
PAPER_SOURCE = "arXiv 2507.11771 (Llama-2 7B/13B/70B)"
AICC_MARGIN = 2.0  # the paper's form must beat every other form's AICc by this much to be "supported"


def exp_decay(x, a, b, c):
    return a + b * np.exp(-c * np.asarray(x, dtype=float))


def power_law(x, a, b):
    return a * np.power(np.asarray(x, dtype=float), b)


def log_linear(x, a, b):
    return a + b * np.log(np.asarray(x, dtype=float))


def linear(x, a, b):
    return a + b * np.asarray(x, dtype=float)


def paper_curve(x):
    return exp_decay(x, PAPER["a"], PAPER["b"], PAPER["c"])


MODELS = {
    "exp": (exp_decay, ("a", "b", "c"), "y = a + b·exp(−c·x)"),
    "power": (power_law, ("a", "b"), "y = a·x^b"),
    "loglinear": (log_linear, ("a", "b"), "y = a + b·ln x"),
    "linear": (linear, ("a", "b"), "y = a + b·x"),
}
