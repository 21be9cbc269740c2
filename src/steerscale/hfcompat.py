"""Deprecated alias (kept for one release): moved to ``steerscale.engines.hfcompat``."""

from .engines.hfcompat import cache_keyword, cache_kwargs, layer_returns_tuple, versions_line  # noqa: F401

__all__ = ["cache_keyword", "cache_kwargs", "layer_returns_tuple", "versions_line"]
