"""What an open-ended sweep measures: `OpenEndedConfig` (points, multipliers, prompts, generation, CE, bootstrap).

The class lives in `steerscale.config` (the one source of configuration: fields with defaults, help text and
bounds, from which the CLI flags and the `[openended]` TOML section are built); this module re-exports it.
"""

from ..config import OpenEndedConfig  # noqa: F401

__all__ = ["OpenEndedConfig"]
