"""Vectors that travel: llama.cpp / repeng control-vector GGUF export and import, steering-vectors import.

Layer numbering (checked in llama.cpp's sources, see docs/interop.md for the lines):

* steerscale layer L = the output of decoder layer L (0-based), after the MLP's residual add.
* llama.cpp: ``common_control_vector_load_one`` (common/common.cpp) parses tensor ``direction.N``, rejects
  N = 0, and adds it into a flat buffer at offset ``n_embd * (N - 1)`` ("layer 1 at [0]");
  ``llama_adapter_cvec::apply`` (src/llama-adapter.cpp) fills ``tensors[il]`` from offset
  ``n_embd * (il - 1)`` for il = 1 .. n_layer - 1, and each model graph (e.g. src/models/llama.cpp) calls
  ``build_cvec(cur, il)`` right after the FFN residual add of block il, i.e. on the block's output
  (``l_out``). So ``direction.N`` is added to the output of decoder layer N: the same N as steerscale's
  layer, no offset. Layer 0 cannot be expressed (the loader rejects ``direction.0``), and llama.cpp adds
  the vector at every token position (prompt and generated): steerscale's ``positions="all"``.
* repeng reads ``hidden_states[layer + 1]`` (the output of decoder layer ``layer``) and writes
  ``direction.{layer}``: the same numbering.
* steering-vectors (``layer_type="decoder_block"``) records and patches the output of ``layers[L]``:
  the same numbering.

File formats: GGUF with ``general.architecture = "controlvector"``, ``controlvector.model_hint`` (a
model_type string), ``controlvector.layer_count`` and one 1-D float32 tensor ``direction.N`` per layer,
as repeng's ``export_gguf`` writes and llama.cpp's ``--control-vector`` reads. steering-vectors has no
file format of its own (its users pickle the object with torch.save); steerscale refuses pickle and reads
a safetensors file with one 1-D tensor ``layer_activations.L`` per layer (docs/interop.md shows the
two-line conversion).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np
import torch

from ..errors import SteerscaleError
from .vectors import SteeringVectors

ARCH = "controlvector"
_DIRECTION = re.compile(r"^direction\.(\d+)$")
_SV_KEY = re.compile(r"^layer_activations\.(\d+)$")
PICKLE_SUFFIXES = (".pt", ".pth", ".pkl", ".pickle", ".bin", ".ckpt")


def _gguf():
    try:
        import gguf
    except ImportError:
        raise SteerscaleError("GGUF control vectors need the 'gguf' package: pip install gguf") from None
    return gguf


def export_llama_cpp(vectors: SteeringVectors, path, layers: list[int] | None = None, multiplier: float = 1.0,
                     model_hint: str | None = None) -> Path:
    """Write ``multiplier * vectors[L]`` for each L in `layers` as a llama.cpp control vector (GGUF).

    `layers`: steerscale layers (output of decoder layer L); default every layer llama.cpp can address
    (1 .. n_layers - 1). Layer 0 is refused: llama.cpp's loader rejects ``direction.0``. Tensor
    ``direction.L`` holds the vector for steerscale layer L (same index; see the module doc). Use it with
    ``llama-cli -m MODEL.gguf --control-vector FILE`` (or ``--control-vector-scaled FILE S``, which
    multiplies again by S). The file is written atomically.
    """
    gguf = _gguf()
    n = vectors.n_layers
    layers = list(range(1, n)) if layers is None else sorted({int(l) for l in layers})
    if not layers:
        raise SteerscaleError("export: no layers to write")
    for l in layers:
        if l == 0:
            raise SteerscaleError("export --layers: layer 0 cannot be written for llama.cpp (its loader rejects "
                                  "direction.0: control vectors start at the output of decoder layer 1)")
        if not 0 < l < n:
            raise SteerscaleError(f"export --layers: layer {l} out of range, the vectors cover layers 0..{n - 1}")
    from ..config import check_multiplier
    from ..io.outputs import check_out_file, write_file

    multiplier = check_multiplier(multiplier, "export --multiplier")
    path = Path(path)
    if path.suffix != ".gguf":
        raise SteerscaleError(f"export: output {path} should end in .gguf")
    path = check_out_file(path, "export: output", "a .gguf file name")
    data = {}
    for l in layers:  # float32 is what llama.cpp reads: a product past its range is refused, not written as inf
        v = (float(multiplier) * vectors.vectors[l].double()).float()
        if not torch.isfinite(v).all():
            raise SteerscaleError(f"export --multiplier {multiplier:g}: multiplier x vector[{l}] overflows float32 "
                                  f"(largest |value| {float(vectors.vectors[l].abs().max()):.3g}); use a smaller "
                                  f"multiplier")
        data[l] = v.numpy()
    # model_hint is a model TYPE (e.g. "llama"), as repeng writes it; never the model's name or path
    hint = model_hint or vectors.meta.get("model_type") or vectors.meta.get("model_hint")
    if not hint:
        import logging

        logging.getLogger(__name__).warning("export: the vectors record no model type; writing model_hint "
                                            "'unknown' (give model_hint / --model-hint, e.g. llama)")
        hint = "unknown"

    def write(tmp: Path) -> None:
        w = gguf.GGUFWriter(str(tmp), ARCH)
        w.add_string(f"{ARCH}.model_hint", str(hint))
        w.add_uint32(f"{ARCH}.layer_count", len(layers))
        w.add_string("steerscale.layer_convention", "direction.N = output of decoder layer N (0-based)")
        w.add_float32("steerscale.multiplier", float(multiplier))
        w.add_string("steerscale.meta", json.dumps({k: v for k, v in vectors.meta.items()
                                                     if k != "mean_residual_norm"}, default=str))
        for l in layers:
            w.add_tensor(f"direction.{l}", data[l])
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_tensors_to_file()
        w.close()

    def verify(tmp: Path) -> int:
        """Re-read the file: every tensor whole and equal to what was written (a short write fails here)."""
        try:
            r = gguf.GGUFReader(str(tmp))
            got = {t.name: np.asarray(t.data, dtype=np.float32).reshape(-1) for t in r.tensors}
            end = max(int(t.data_offset) + int(t.n_bytes) for t in r.tensors)
        except Exception:
            raise SteerscaleError(f"{path}: the written file does not read back whole (disk full or file size "
                                  f"limit?); nothing was written under the final name") from None
        if set(got) != {f"direction.{l}" for l in layers} or \
                any(not np.array_equal(got[f"direction.{l}"], data[l]) for l in layers):
            raise SteerscaleError(f"{path}: the written file does not read back as written; nothing was written "
                                  f"under the final name")
        size = os.stat(tmp).st_size
        return size if size >= end else end  # the header's last tensor must end inside the file

    write_file(path, write, verify)
    return path


def _field_str(reader, key: str) -> str | None:
    f = reader.get_field(key)
    if f is None or not len(f.parts):
        return None
    try:
        return bytes(f.parts[-1]).decode("utf-8", "replace")
    except (TypeError, ValueError):
        return None


def _assemble(found: dict[int, np.ndarray], path, n_layers: int | None, meta: dict) -> SteeringVectors:
    if not found:
        raise SteerscaleError(f"{path}: no direction tensors found")
    sizes = {v.shape[0] for v in found.values()}
    if len(sizes) != 1:
        raise SteerscaleError(f"{path}: direction tensors differ in size ({sorted(sizes)})")
    hidden = sizes.pop()
    top = max(found)
    n = top + 1 if n_layers is None else int(n_layers)
    if top >= n:
        raise SteerscaleError(f"{path}: holds a vector for layer {top}, but n_layers is {n} (layers 0..{n - 1})")
    out = torch.zeros(n, hidden, dtype=torch.float32)
    for l, v in found.items():
        with np.errstate(over="ignore", invalid="ignore"):
            v32 = np.asarray(v, dtype=np.float32)
        if not np.isfinite(v32).all():
            raise SteerscaleError(f"{path}: the vector for layer {l} contains NaN or Inf (in float32)")
        out[l] = torch.from_numpy(v32.copy())
    meta = dict(meta, n_layers=n, hidden_size=hidden, layers_present=sorted(found), normalization="none",
                read_at="output of decoder layer L (imported; layers not in layers_present are zero)")
    return SteeringVectors(out, meta)


def import_control_vector(path, n_layers: int | None = None) -> SteeringVectors:
    """Read a llama.cpp / repeng control-vector GGUF into SteeringVectors (``direction.N`` -> layer N).

    Applies llama.cpp's loader rules: every tensor must be named ``direction.N`` with N >= 1, 1-D,
    float32, all of one size. `n_layers`: the target model's layer count (default: highest layer + 1);
    layers the file does not cover are zero and listed in ``meta["layers_present"]``.
    """
    from ..io.guards import check_input_file

    gguf = _gguf()
    path = check_input_file(Path(path), "a control-vector .gguf file")
    try:
        reader = gguf.GGUFReader(str(path))
    except Exception as e:  # gguf raises several types on bad files
        raise SteerscaleError(f"{path}: not a readable GGUF file ({type(e).__name__})") from None
    arch = _field_str(reader, "general.architecture")
    if arch is not None and arch != ARCH:
        raise SteerscaleError(f"{path}: general.architecture is {arch!r}, expected {ARCH!r} (a model file, "
                              f"not a control vector?)")
    found: dict[int, np.ndarray] = {}
    names: dict[int, str] = {}
    for t in reader.tensors:
        m = _DIRECTION.match(t.name)
        if not m:
            raise SteerscaleError(f"{path}: tensor {t.name!r}: expected names direction.N (N >= 1)")
        layer = int(m.group(1))
        if layer in names:
            raise SteerscaleError(f"{path}: tensors {names[layer]!r} and {t.name!r} both name layer {layer}; "
                                  f"expected one tensor per layer")
        names[layer] = t.name
        if layer == 0:
            raise SteerscaleError(f"{path}: tensor direction.0: llama.cpp rejects layer 0; not a valid control vector")
        if t.tensor_type != gguf.GGMLQuantizationType.F32:
            raise SteerscaleError(f"{path}: tensor {t.name!r} is {t.tensor_type.name}, expected F32")
        data = np.asarray(t.data, dtype=np.float32).reshape(-1)
        if len([d for d in t.shape if d > 1]) > 1:
            raise SteerscaleError(f"{path}: tensor {t.name!r} has shape {[int(d) for d in t.shape]}, expected 1-D")
        if not np.isfinite(data).all():
            raise SteerscaleError(f"{path}: tensor {t.name!r} contains NaN or Inf")
        found[layer] = data
    meta = {"source": "llama.cpp control vector", "source_file": str(path),
            "model_hint": _field_str(reader, f"{ARCH}.model_hint") or ""}
    sm = _field_str(reader, "steerscale.meta")
    if sm:
        try:
            meta["exported_meta"] = json.loads(sm)
        except json.JSONDecodeError:
            pass
    return _assemble(found, path, n_layers, meta)


def import_steering_vectors(path, n_layers: int | None = None) -> SteeringVectors:
    """Read a steering-vectors SteeringVector saved as safetensors (``layer_activations.L`` tensors).

    Pickle files (.pt/.pth/.pkl/...) are refused: unpickling can run code. Convert once, where the pickle is
    trusted: ``save_file({f"layer_activations.{k}": v.float().contiguous() for k, v in
    sv.layer_activations.items()}, "vec.safetensors", metadata={"layer_type": sv.layer_type})``.
    Only ``layer_type = "decoder_block"`` (the default; the output of layers[L]) is accepted.
    """
    from ..io.tensorio import read_safetensors

    path = Path(path)
    if path.suffix.lower() in PICKLE_SUFFIXES:
        raise SteerscaleError(f"{path}: pickle files are refused (unpickling can run code); save the steering-"
                              f"vectors object as safetensors with one 'layer_activations.L' tensor per layer "
                              f"(see docs/interop.md)")
    tensors, meta = read_safetensors(path)
    layer_type = meta.get("layer_type", "decoder_block")
    if layer_type != "decoder_block":
        raise SteerscaleError(f"{path}: layer_type {layer_type!r}: only 'decoder_block' (output of decoder "
                              f"layer L) matches steerscale's layers")
    found, names = {}, {}
    for k, t in tensors.items():
        m = _SV_KEY.match(k)
        if not m:
            raise SteerscaleError(f"{path}: tensor {k!r}: expected names layer_activations.L")
        if t.ndim != 1 or not t.is_floating_point():
            raise SteerscaleError(f"{path}: tensor {k!r} has shape {tuple(t.shape)} and dtype {t.dtype}; "
                                  f"expected a 1-D float tensor")
        if not torch.isfinite(t).all():
            raise SteerscaleError(f"{path}: tensor {k!r} contains NaN or Inf")
        layer = int(m.group(1))
        if layer in names:
            raise SteerscaleError(f"{path}: tensors {names[layer]!r} and {k!r} both name layer {layer}; expected "
                                  f"one tensor per layer")
        names[layer] = k
        found[layer] = t.float().numpy()
    return _assemble(found, path, n_layers, {"source": "steering-vectors", "source_file": str(path),
                                             "layer_type": layer_type})


def import_vectors(path, n_layers: int | None = None) -> SteeringVectors:
    """Import by file type: ``.gguf`` -> control vector; ``.safetensors`` -> steering-vectors layout.
    `n_layers` (the target model's layer count) must be 1..guards.MAX_LAYERS and cover the file's layers."""
    from ..io.guards import MAX_LAYERS, check_input_file

    if n_layers is not None and (isinstance(n_layers, bool) or not isinstance(n_layers, int)
                                 or not 1 <= n_layers <= MAX_LAYERS):
        raise SteerscaleError(f"import --n-layers {n_layers!r}: expected the model's layer count, 1..{MAX_LAYERS}")
    p = Path(path)
    if p.suffix.lower() in (".gguf", ".safetensors"):
        check_input_file(p, f"a {p.suffix.lower()} vectors file")
    suffix = p.suffix.lower()
    if suffix == ".gguf":
        return import_control_vector(p, n_layers)
    if suffix == ".safetensors":
        return import_steering_vectors(p, n_layers)
    if suffix in PICKLE_SUFFIXES:
        return import_steering_vectors(p, n_layers)  # raises the pickle message
    raise SteerscaleError(f"{p}: unknown vector file type {suffix!r}; expected .gguf (llama.cpp/repeng) or "
                          f".safetensors (steering-vectors layout)")


def _register() -> None:
    from .vector_ops import register_exporter

    register_exporter("gguf", export_llama_cpp)  # SteeringVectors.export_gguf writes through this module


_register()
