"""Alias kept for one release: the open-ended run's point store moved to `steerscale.measures.openended_store`."""

from .measures.openended_store import (  # noqa: F401
    identity, judge_tag, keys, measured, pack, unpack, unpack_verdicts, verdicts,
)

__all__ = ["identity", "judge_tag", "keys", "measured", "pack", "unpack", "unpack_verdicts", "verdicts"]
