"""Alias kept for one release: the judge's bounded HTTP POST moved to `steerscale.measures.httpclient`."""

from .measures.httpclient import DEFAULT_MAX_BYTES, post_json  # noqa: F401

__all__ = ["DEFAULT_MAX_BYTES", "post_json"]
