"""Device check of the Ray backend's model-fits-the-GPUs refusal (backends/resources.py), on a machine with a GPU.

    python scripts/check_ray_gpu_fit.py

1. ``reserved_gpu_bytes`` in this process and inside a Ray actor that reserved one GPU (what the check compares
   against). 2. A model folder whose safetensors header declares 40e9 float32 parameters (160 GB; the file holds
   no data, so nothing can be loaded): a Ray worker with one GPU must refuse it with the one-line fit error before
   loading. 3. The same folder with ``--max-memory``-style spilling allowed is not refused by the check (the load
   then fails on the empty file, as it should). 4. A tiny real model loads on ``cuda`` in a Ray worker that
   reserved one GPU (no refusal, info.device cuda:0). Prints one line per step; exit 0 when all hold.

Needs torch with CUDA, Ray and transformers. Not run yet: the GPU machine lent to issue 21 had torch+CUDA
but no Ray (and no network to install it).
"""

from __future__ import annotations

import json
import struct
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))


def fake_model(folder: Path, n: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps({"model_type": "llama", "architectures": ["LlamaForCausalLM"]}))
    side = int(n ** 0.5)
    head = json.dumps({"w": {"dtype": "F32", "shape": [side, side], "data_offsets": [0, side * side * 4]}}).encode()
    (folder / "model.safetensors").write_bytes(struct.pack("<Q", len(head)) + head)
    return folder


def main() -> int:
    import ray
    import torch

    from steerscale.sweep.backends.base import ModelRef
    from steerscale.sweep.backends.ray import RayBackend
    from steerscale.sweep.backends.resources import count_file_params, reserved_gpu_bytes
    from steerscale.errors import SteerscaleError

    print(f"torch {torch.__version__}, ray {ray.__version__}, cuda {torch.cuda.is_available()}, "
          f"GPUs here: {[round(b / 2**30, 1) for b in reserved_gpu_bytes()]} GiB")
    ok = True
    tmp = Path(tempfile.mkdtemp())
    big = fake_model(tmp / "fake40b", 40_000_000_000)
    print(f"fake model: {count_file_params(str(big)):,} parameters declared")
    ray.init(address="local", num_cpus=4, num_gpus=1, include_dashboard=False, log_to_driver=False)
    try:
        probe = ray.remote(num_gpus=1)(lambda: reserved_gpu_bytes()).remote()
        print(f"GPUs seen by a Ray task that reserved 1 GPU: {[round(b / 2**30, 1) for b in ray.get(probe)]} GiB")
        for spill, want in ((None, "do not fit the 1 GPU(s) a Ray worker reserves"), ({0: "10GiB", "cpu": "1GiB"}, None)):
            b = RayBackend(workers=1, gpus_per_worker=1, max_memory=spill)
            try:
                b.start(ModelRef(str(big), "float32", "auto"))
                msg = "(no error)"
            except SteerscaleError as e:
                msg = str(e)
            finally:
                b.close()
            good = (want in msg) if want else ("do not fit" not in msg and msg != "(no error)")
            ok &= good
            print(f"{'OK ' if good else 'BAD'} max_memory={spill}: {msg[:400]}")
        from tinydir import save_tiny_model

        tiny = save_tiny_model(tmp / "tiny", layers=4, hidden=64)
        b = RayBackend(workers=1, gpus_per_worker=1)
        try:
            hello = b.start(ModelRef(str(tiny), "float32", "cuda"))[0]
        finally:
            b.close()
        good = hello["info"]["device"].startswith("cuda") and hello.get("note") is None
        ok &= good
        print(f"{'OK ' if good else 'BAD'} tiny model on cuda in a 1-GPU worker: device {hello['info']['device']}, "
              f"note {hello.get('note')}")
    finally:
        ray.shutdown()
    print("ALL OK" if ok else "SOME CHECKS FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
