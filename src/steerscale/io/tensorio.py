"""safetensors in one place: atomic writes with metadata, and guarded reads with one-line errors.

Contract:

* ``atomic_save(tensors, path, metadata)``: the safetensors bytes of `tensors` (name -> contiguous tensor)
  with string `metadata` are written to a temporary file beside `path`, fsynced and renamed over it
  (``store.atomic_write_bytes``), so a reader never sees a half-written file; disk-full is a clear error.
* ``save_with_meta(path, tensors, meta)``: the same, with `meta` (a JSON object) stored as JSON under the
  metadata key ``"steerscale"`` — the layout of every file steerscale writes (vectors, activation caches,
  ablated directions).
* ``read_safetensors(path)`` -> (tensors, metadata): `path` must be a readable regular file within the
  input size limit (``guards.check_input_file``); a truncated or corrupted file, or a float tensor with NaN
  or Inf, is a one-line SteerscaleError naming the file (and the tensor).
* ``json_meta(path, metadata)``: the ``"steerscale"`` JSON object of a file's metadata (``{}`` when absent);
  invalid JSON or a non-object is a one-line error naming the file.

No pickle anywhere: only the safetensors format is read or written here.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from ..errors import SteerscaleError

META_KEY = "steerscale"


def atomic_save(tensors: dict, path, metadata: dict) -> None:
    """safetensors bytes written atomically (temp file, fsync, rename); disk-full is a clear error."""
    from safetensors.torch import save

    from .store import atomic_write_bytes

    atomic_write_bytes(Path(path), save(tensors, metadata=metadata))


def save_with_meta(path, tensors: dict, meta: dict) -> Path:
    """`atomic_save` with `meta` stored as JSON under the metadata key ``"steerscale"``; returns the path."""
    path = Path(path)
    atomic_save(tensors, path, {META_KEY: json.dumps(meta)})
    return path


def read_safetensors(path) -> tuple[dict, dict]:
    """Load tensors and metadata; a missing, truncated or corrupted file is a one-line error."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    from .guards import check_input_file

    path = check_input_file(path, "a .safetensors file")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
        tensors = load_file(str(path))
    except Exception as e:  # safetensors raises its own error types for bad headers/lengths
        msg = str(e).splitlines()[0][:120] if str(e).strip() else type(e).__name__
        raise SteerscaleError(f"{path}: not a readable safetensors file, truncated or corrupted ({msg})") from None
    for name, t in tensors.items():
        if t.is_floating_point() and not torch.isfinite(t).all():
            raise SteerscaleError(f"{path}: tensor {name!r} contains NaN or Inf")
    return tensors, meta


def json_meta(path, metadata: dict) -> dict:
    """The JSON object stored under ``"steerscale"`` in a file's `metadata` ({} when there is none)."""
    try:
        m = json.loads(metadata.get(META_KEY, "{}"))
    except json.JSONDecodeError:
        raise SteerscaleError(f"{path}: metadata is not valid JSON") from None
    if not isinstance(m, dict):
        raise SteerscaleError(f"{path}: metadata {META_KEY!r} must be a JSON object")
    return m
