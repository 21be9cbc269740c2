"""Measure the memory cost of loading a model: peak RSS of this process before and after ``load_model``.

Usage: ``PYTHONPATH=src python scripts/measure_load_memory.py [SPEC]`` (default: the embedded smollm2-135m GGUF).
Prints the file size, the parameter count, the resident memory before loading (Python + torch + transformers
imported), the peak after loading, and the bytes per parameter that the float32 weights take by arithmetic.
Linux only (reads /proc/self/status). The numbers in README.md ("Memory") come from this script.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path


def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def main(spec: str = "smollm2-135m") -> None:
    import torch  # noqa: F401  (imported before the baseline so it is not counted as the model's)
    import transformers  # noqa: F401

    import steerscale as ss
    from steerscale.core.models import resolve_spec

    folder, kw = resolve_spec(spec)
    path = Path(folder) / kw["gguf_file"] if "gguf_file" in kw else Path(folder)
    before = _status_kb("VmHWM")
    t0 = time.perf_counter()
    model, tok, info = ss.load_model(spec)
    dt = time.perf_counter() - t0
    peak, now = _status_kb("VmHWM"), _status_kb("VmRSS")
    n = info.n_params
    size = Path(path).stat().st_size if Path(path).is_file() else None
    print(f"model           {info.name} ({spec})")
    if size is not None:
        print(f"file            {size / 2**20:.1f} MiB on disk ({8 * size / n:.2f} bits per parameter)")
    print(f"parameters      {n:,} ({info.dtype} in memory: {n * 4 / 2**20:.0f} MiB by arithmetic, 4 bytes each)")
    print(f"RSS before load {before / 1024:.0f} MiB (peak so far, Python + torch + transformers imported)")
    print(f"RSS after load  {now / 1024:.0f} MiB; peak {peak / 1024:.0f} MiB; "
          f"load added {(peak - before) / 1024:.0f} MiB to the peak in {dt:.1f} s")


if __name__ == "__main__":
    main(*sys.argv[1:2])
