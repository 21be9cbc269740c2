"""What a Ray worker needs to load its model: ``--max-memory`` / ``--offload-folder``, and the fit check.

``parse_max_memory`` turns ``0=70GiB,1=70GiB,cpu=200GiB`` into accelerate's ``max_memory`` dict (one-line
errors naming the bad part). ``count_file_params`` counts a model's parameters from its files without
loading them (safetensors headers, or the GGUF tensor table). ``check_fit`` refuses a model whose weights
(parameters x bytes per parameter of the dtype) do not fit the GPUs a worker reserved, instead of letting
accelerate's ``device_map="auto"`` silently spill layers to CPU; it is skipped when the worker has no GPU
(a CPU-only cluster) or when the user allowed spilling (``--max-memory`` / ``--offload-folder``).
"""

from __future__ import annotations

import json
import re
import struct
from pathlib import Path

from ...errors import SteerscaleError

DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}
FIT_MARGIN = 0.90  # weights may use at most this share of the reserved GPUs' memory (activations need the rest)
_SIZE = re.compile(r"^\d+(\.\d+)?\s*(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)$")


def parse_max_memory(text: str | None) -> dict | None:
    """'0=70GiB,cpu=200GiB' -> {0: '70GiB', 'cpu': '200GiB'} (accelerate's max_memory); None stays None."""
    if text is None:
        return None
    out: dict = {}
    for part in str(text).split(","):
        dev, eq, size = part.strip().partition("=")
        dev, size = dev.strip(), size.strip()
        if not eq or not _SIZE.match(size) or not (dev.isdigit() or dev in ("cpu", "disk")):
            raise SteerscaleError(f"--max-memory {text[:80]!r}: {part.strip()[:40]!r} is not DEVICE=SIZE; expected "
                                  f"e.g. 0=70GiB,1=70GiB,cpu=200GiB (devices: GPU index, cpu, disk)")
        key = int(dev) if dev.isdigit() else dev
        if key in out:
            raise SteerscaleError(f"--max-memory {text[:80]!r}: device {dev} given twice")
        out[key] = size
    return out


def _safetensors_params(path: Path) -> int:
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) != 8:
            raise ValueError("truncated")
        (n,) = struct.unpack("<Q", head)
        if n > 100_000_000:
            raise ValueError("header too large")
        meta = json.loads(f.read(n))
    total = 0
    for name, t in meta.items():
        if name == "__metadata__":
            continue
        k = 1
        for d in t["shape"]:
            k *= int(d)
        total += k
    return total


def count_file_params(spec: str) -> int | None:
    """Parameters stored in the model's weight files (no weights are read), or None when the files are not
    on this machine (a hub id not in the local cache) or cannot be read; the caller then skips the check."""
    from ...core.models import local_model_folder

    local = local_model_folder(spec)
    if local is None:
        return None
    p, kwargs = local
    try:
        if "gguf_file" in kwargs:
            import gguf

            return int(sum(int(t.n_elements) for t in gguf.GGUFReader(str(p / kwargs["gguf_file"])).tensors))
        files = sorted(p.glob("*.safetensors"))
        return sum(_safetensors_params(f) for f in files) if files else None
    except Exception:  # an unreadable file: the load itself will say what is wrong with it
        return None


def check_fit(spec: str, n_params: int | None, dtype: str, gpu_bytes: list[int], spill_allowed: bool) -> str | None:
    """Refuse (SteerscaleError) a model that does not fit `gpu_bytes` (the total memory of each GPU this
    worker reserved); return a note when the check was skipped, else None."""
    if not gpu_bytes:
        return "no GPU reserved by this worker (CPU-only): the model-fits-the-GPUs check was skipped"
    if n_params is None:
        return f"model {spec}: files not found on this node before loading: the model-fits-the-GPUs check was skipped"
    if spill_allowed:
        return None
    need = n_params * DTYPE_BYTES.get(dtype, 4)
    have = sum(gpu_bytes)
    if need > FIT_MARGIN * have:
        raise SteerscaleError(
            f"model {spec}: {n_params / 1e9:.2f}B parameters x {DTYPE_BYTES.get(dtype, 4)} bytes ({dtype}) = "
            f"{need / 2**30:.1f} GiB of weights do not fit the {len(gpu_bytes)} GPU(s) a Ray worker reserves "
            f"({have / 2**30:.1f} GiB, {FIT_MARGIN:.0%} usable); give more --gpus-per-worker (with --device auto), "
            f"a smaller --dtype, or allow spilling to CPU/disk with --max-memory / --offload-folder")
    return None


def reserved_gpu_bytes() -> list[int]:
    """Total memory of each GPU visible to this process (Ray sets CUDA_VISIBLE_DEVICES to the reservation)."""
    try:
        import torch

        if not torch.cuda.is_available():
            return []
        return [int(torch.cuda.get_device_properties(i).total_memory) for i in range(torch.cuda.device_count())]
    except Exception:  # no usable CUDA runtime: treated as no GPU
        return []
