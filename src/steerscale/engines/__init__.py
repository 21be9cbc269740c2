"""Sweep engines: interchangeable ways to score a model at (layer, multiplier) points, behind one contract.

``Engine`` (engines/base.py) is the contract; ``ENGINES`` maps each ``--engine`` name to its class and
``get_engine(name)`` makes a fresh one:

- ``naive`` (engines/naive.py): the reference, one full forward pass per item and point;
- ``fast`` (engines/fast.py, the default): the same numbers (up to float rounding, checked at run time by
  engines/check.py), computing only what steering changes, from partial forward passes and KV caches
  (engines/partial.py, fast_all.py, fast_ie.py).

To add an engine: subclass ``Engine``, implement ``score_layer`` (and ``points`` / ``layer_groups`` /
``baseline`` if it shares work), and register it: ``ENGINES.register("name")(YourEngine)``
(steerscale/registry.py, the one plug-in shape); docs/architecture/engines.md says more.
"""

from __future__ import annotations

from ..registry import Registry
from .base import Engine, EngineStats
from .fast import LAYERS_PER_GROUP, FastEngine, sweep_points
from .naive import NaiveEngine, naive_scores

ENGINES: Registry[type[Engine]] = Registry("engine", Engine)  # registration order: the first is the default
ENGINES.register("fast")(FastEngine)
ENGINES.register("naive")(NaiveEngine)


def get_engine(name: str, **kwargs) -> Engine:
    """A fresh engine by its ``--engine`` name; `kwargs` go to its constructor (e.g. ``progress``); an unknown name
    is one line naming the valid keys."""
    return ENGINES.create(name, **kwargs)


__all__ = ["ENGINES", "Engine", "EngineStats", "FastEngine", "LAYERS_PER_GROUP", "NaiveEngine", "get_engine",
           "naive_scores", "sweep_points"]
