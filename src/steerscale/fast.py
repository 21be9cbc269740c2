"""Deprecated alias (kept for one release): the fast engine now lives in ``steerscale.engines``.

``FastEngine``, ``EngineStats`` and ``sweep_points`` are in ``steerscale.engines`` (engines/fast.py), the
run-time check (``check_first_batch``, ``CHECK_TOL``) in engines/check.py, the partial-forward and
KV-cache helpers in engines/partial.py. docs/architecture.md lists the aliases kept for one release.
"""

from __future__ import annotations

import warnings

from .engines.base import EngineStats
from .engines.check import CHECK_TOL, _maxdiff, check_first_batch
from .engines.fast import LAYERS_PER_GROUP, FastEngine, sweep_points
from .engines.partial import BLOCK_MB, STATE_MB, TAIL_ROWS
from .engines.partial import common_prefix as _common_prefix

warnings.warn("steerscale.fast is deprecated: import FastEngine, sweep_points and EngineStats from "
              "steerscale.engines", DeprecationWarning, stacklevel=2)

__all__ = ["BLOCK_MB", "CHECK_TOL", "EngineStats", "FastEngine", "LAYERS_PER_GROUP", "STATE_MB", "TAIL_ROWS",
           "check_first_batch", "sweep_points", "_common_prefix", "_maxdiff"]
