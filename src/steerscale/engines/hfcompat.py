"""Differences between the transformers releases steerscale supports, chosen from the installed API.

The supported range is the one declared in pyproject.toml; ``make test-oldest`` runs the fast-vs-naive
exactness tests on its oldest release and ``make test`` on the newest. Anything that differs between
them is decided here by looking at the installed code, never by comparing version strings, so a
release in between gets what its own API offers.

- The KV cache keyword of a model's ``forward``: ``cache`` (recent 5.x releases) or ``past_key_values``
  (older releases, 4.x included). Those take an unknown ``cache=`` into ``**kwargs`` and ignore it, so
  passing the wrong one silently runs a suffix without its prefix: ``cache_kwargs`` reads the
  ``forward`` signature instead.
- What a decoder layer returns: the hidden states (5.x, and 4.x llama-like models) or a tuple whose
  first element they are (4.x gemma2/gemma3, gpt2, gpt_neox). The fast engine's stand-in layers must
  return the same: ``layer_returns_tuple`` finds out by calling layer 0 once on one token.
"""

from __future__ import annotations

import inspect

import torch

from ..errors import SteerscaleError
from ..core.steering import first_layer_output

_CACHE_KEYWORDS = ("cache", "past_key_values")
_known: dict[type, str] = {}


def cache_keyword(module: torch.nn.Module) -> str:
    """The name under which ``module.forward`` takes a KV cache: ``cache`` or ``past_key_values``.

    Raises SteerscaleError when the forward takes neither (the fast engine cannot pass it a cache).
    """
    cls = type(module)
    kw = _known.get(cls)
    if kw is None:
        params = inspect.signature(module.forward).parameters
        kw = next((k for k in _CACHE_KEYWORDS if k in params), None)
        if kw is None:
            raise SteerscaleError(f"{cls.__name__}.forward takes no KV cache argument ({' or '.join(_CACHE_KEYWORDS)}); "
                                  f"the fast engine cannot run this model: use --engine naive")
        _known[cls] = kw
    return kw


def cache_kwargs(module: torch.nn.Module, cache) -> dict:
    """``{keyword: cache}`` for ``module(**inputs, **cache_kwargs(module, cache))``; {} when cache is None."""
    return {} if cache is None else {cache_keyword(module): cache}


def versions_line() -> str:
    """'transformers X, torch Y': for error messages about numbers that depend on them."""
    import transformers

    return f"transformers {transformers.__version__}, torch {torch.__version__}"


_tuple_out: dict[type, bool] = {}


def layer_returns_tuple(base: torch.nn.Module, layers: torch.nn.ModuleList, device) -> bool:
    """Does a decoder layer of this class return a tuple (hidden states first) rather than a tensor?

    Found once per layer class by running ``base`` (the model without its head) on one token and
    stopping it at the output of layer 0 (``steering.first_layer_output``), so it costs one layer on one token.
    """
    cls = type(layers[0])
    if cls not in _tuple_out:
        out = first_layer_output(base, layers, input_ids=torch.zeros(1, 1, dtype=torch.long, device=device),
                                 use_cache=False)
        if out is None:
            raise SteerscaleError(f"{type(base).__name__}: its forward did not call decoder layer 0; "
                                  f"the fast engine cannot run this model: use --engine naive")
        _tuple_out[cls] = isinstance(out, tuple)
    return _tuple_out[cls]
