"""What SteeringVectors do besides training and files: apply as a context manager, arithmetic, GGUF export.

The habits of steering-vectors and repeng, on steerscale's vectors (``SteeringVectors`` delegates here):

* ``apply(vectors, model, multiplier, layers)``: ``with vecs.apply(model, multiplier=4.0): ...`` steers
  through ``steering.steer`` (forward hooks, removed on exit, even on error). ``layers=None`` steers every
  layer the vectors cover; negative indices count from the end (-1 = the last layer).
* Arithmetic (repeng's ``ControlVector``): ``-v``, ``k * v``, ``v * k``, ``v / k``, ``v1 + v2``, ``v1 - v2``,
  layer by layer. Operands must have the same shape and come from the same model (equal
  ``weights_fingerprint`` when both record one, else equal model names); anything else is refused with one
  line. The result keeps the model's identity keys (``IDENTITY_KEYS``) and records ``operation`` (e.g.
  ``"a + b"``) and ``operands`` (each operand's content hash, ``vectors_hash``, with its own operation or
  training data hash); keys that describe one training run (dataset, letter figures, ...) are not carried over.
* ``export_gguf(vectors, path, ...)``: a llama.cpp / repeng control vector, written by
  ``interop.export_llama_cpp`` (the one GGUF writer, registered here by interop: ``register_exporter``);
  ``model_hint`` is the model type.
"""

from __future__ import annotations

import hashlib
import math
import numbers
from contextlib import contextmanager
from typing import TYPE_CHECKING

import torch

from ..errors import SteerscaleError
from .models import get_layers, resolve_layers
from .types import FittedVectors

if TYPE_CHECKING:
    from transformers import PreTrainedModel

    from .vectors import SteeringVectors

# metadata keys that say which model the vectors belong to (kept by arithmetic)
IDENTITY_KEYS = ("model", "model_spec", "model_type", "n_layers", "hidden_size", "weights_fingerprint",
                 "answer_scheme", "template", "read_at")


def vectors_hash(vectors: SteeringVectors) -> str:
    """A content hash of the vector values (shape and float32 bytes), 16 hex digits."""
    t = vectors.vectors.detach().float().cpu().contiguous()
    h = hashlib.sha256(f"{tuple(t.shape)};".encode())
    h.update(t.numpy().tobytes())
    return h.hexdigest()[:16]


@contextmanager
def apply(vectors: SteeringVectors, model: PreTrainedModel, multiplier: float = 1.0, layers=None,
          positions: str = "all"):
    """Steer `model` with ``multiplier * vectors[L]`` at each L in `layers` (default: every layer the vectors
    cover; -1 = the last layer) for the duration of the ``with`` block; yields the ``steering.Steering``."""
    from .steering import steer

    n = len(get_layers(model))
    vectors.check_model(model)
    if layers is not None:
        layers = resolve_layers([layers] if isinstance(layers, int) else list(layers), n, "apply layers")
    with steer(model, vectors, layers, multiplier, positions=positions) as s:
        yield s


def _scalar(k, op: str) -> float:
    if isinstance(k, torch.Tensor) and k.numel() == 1:
        k = k.item()
    if isinstance(k, bool) or not isinstance(k, numbers.Real) or not math.isfinite(float(k)):
        raise SteerscaleError(f"steering vectors {op} {k!r}: expected a finite number (or other steering vectors "
                              f"for + and -)")
    return float(k)


def _operand(v) -> dict:
    d = {"hash": vectors_hash(v)}
    for k in ("operation", "dataset_hash", "dataset", "normalization", "trained_from"):
        if k in v.meta:
            d[k] = v.meta[k]
    return d


def _derived(cls, tensor: torch.Tensor, operation: str, operands: list):
    first = operands[0].meta
    meta = {k: first[k] for k in IDENTITY_KEYS if k in first}
    norms = [o.meta.get("mean_residual_norm") for o in operands]
    if norms[0] is not None and all(n == norms[0] for n in norms):
        meta["mean_residual_norm"] = norms[0]  # a property of the model and data, same for every operand
    meta["operation"] = operation
    meta["operands"] = [_operand(o) for o in operands]
    return cls(tensor, meta)


def check_compatible(a, b, op: str) -> None:
    """Refuse to combine vectors of different shapes or different models (one line naming both)."""
    if tuple(a.vectors.shape) != tuple(b.vectors.shape):
        raise SteerscaleError(f"steering vectors {op}: shapes differ ({a.n_layers} layers x {a.hidden_size} vs "
                              f"{b.n_layers} layers x {b.hidden_size}); expected vectors of one model")
    fa, fb = a.meta.get("weights_fingerprint"), b.meta.get("weights_fingerprint")
    if fa and fb:
        if fa != fb:
            raise SteerscaleError(f"steering vectors {op}: made on different models (weights fingerprints {fa} "
                                  f"of {a.meta.get('model', '?')!r} and {fb} of {b.meta.get('model', '?')!r})")
        return
    ma, mb = a.meta.get("model"), b.meta.get("model")
    if ma and mb and ma != mb:
        raise SteerscaleError(f"steering vectors {op}: made on different models ({ma!r} and {mb!r})")


def _name(v) -> str:
    op = v.meta.get("operation")
    return f"({op})" if op else vectors_hash(v)[:8]


def neg(v):
    return _derived(type(v), -v.vectors, f"-{_name(v)}", [v])


def scale(v, k, op: str = "*"):
    k = _scalar(k, op)
    if op == "/":
        if k == 0:
            raise SteerscaleError("steering vectors / 0: division by zero")
        return _derived(type(v), v.vectors / k, f"{_name(v)} / {k:g}", [v])
    return _derived(type(v), v.vectors * k, f"{k:g} * {_name(v)}", [v])


def add(a, b, sign: int = 1):
    op = "+" if sign > 0 else "-"
    if not isinstance(b, FittedVectors):  # SteeringVectors
        raise SteerscaleError(f"steering vectors {op} {type(b).__name__}: expected other steering vectors (scale "
                              f"with * or /)")
    check_compatible(a, b, op)
    return _derived(type(a), a.vectors + sign * b.vectors, f"{_name(a)} {op} {_name(b)}", [a, b])


# GGUF writers by name, registered by the module that writes the format (steerscale.core.interop registers "gguf" when
# imported, which `import steerscale` does): vectors -> vector_ops -> interop -> vectors would be an import cycle.
EXPORTERS: dict = {}


def register_exporter(fmt: str, write) -> None:
    """`write(vectors, path, layers, multiplier, model_hint) -> Path` becomes the writer of format `fmt`."""
    EXPORTERS[fmt] = write


def export_gguf(vectors: SteeringVectors, path, layers=None, multiplier: float = 1.0, model_hint: str | None = None):
    """Write the vectors as a llama.cpp / repeng control vector GGUF (``interop.export_llama_cpp``, the one GGUF
    writer): tensor ``direction.L`` = ``multiplier * vectors[L]`` for each L in `layers` (default every layer
    llama.cpp can address, 1..n_layers-1; -1 = the last layer), ``controlvector.model_hint`` = `model_hint` or the
    vectors' recorded model type (e.g. "llama")."""
    if "gguf" not in EXPORTERS:
        raise SteerscaleError("GGUF export: no writer registered; import steerscale (steerscale.interop) first")
    if layers is not None:
        layers = resolve_layers([layers] if isinstance(layers, int) else list(layers), vectors.n_layers,
                                "export layers")
    return EXPORTERS["gguf"](vectors, path, layers, multiplier, model_hint)
