"""Local scaling of the Ray backend: serial vs 1 and 2 Ray workers on the same sweep (one torch thread each).

    python benchmarks/bench_scaleout.py                       # SmolLM2-135M, 16 items, every 3rd layer
    python benchmarks/bench_scaleout.py --tiny                # a tiny random model (seconds; a dry run)

Every configuration runs the same shard plan (--shards units, default 4), so all three write the same
bytes (checked). Reported apart: fixed costs (Ray cluster start, actors loading the model) and unit time
(the units themselves, from first dispatch to last result). Scaling efficiency = T1 / (2 * T2) on unit
time. Needs 3 free cores for an honest number (driver + 2 workers); say the machine's load with any
result (the script prints the load average before and after).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
SRC = str(Path(__file__).resolve().parents[1] / "src")
sys.path.insert(0, SRC)
os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (SRC, os.environ.get("PYTHONPATH")) if p)  # Ray workers


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--tiny", action="store_true", help="a tiny random model instead (dry run)")
    ap.add_argument("--items", type=int, default=16)
    ap.add_argument("--layers", default="0-29:3")
    ap.add_argument("--shards", type=int, default=4)
    ap.add_argument("--json", default=None, help="write the results here")
    args = ap.parse_args()

    import torch

    torch.set_num_threads(1)
    import ray

    from steerscale.sweep.backends import ModelRef, drive_sweep
    from steerscale.sweep.backends.ray import RayBackend
    from steerscale.cli.options import parse_layers
    from steerscale.core.data import load_dataset
    from steerscale.core.models import load_model
    from steerscale.config import SweepConfig
    from steerscale.sweep.run import run_sweep
    from steerscale.core.vectors import train_vectors

    work = Path(tempfile.mkdtemp(prefix="bench-scaleout-"))
    spec = args.model
    if args.tiny:
        sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
        from tinydir import save_tiny_model

        spec = str(save_tiny_model(work / "model", layers=8, hidden=128))
        args.layers = "all"
    load = [os.getloadavg()[0]]
    t = time.time()
    model, tok, info = load_model(spec)
    t_load = time.time() - t
    items = load_dataset("refusal-test", limit=args.items)
    template = "plain" if args.tiny else "chat"
    vecs = train_vectors(model, tok, load_dataset("refusal-train", limit=16), template, None, "none", 8,
                         progress=False, info=info)
    config = SweepConfig(layers=parse_layers(args.layers), multipliers=[-1.0, 0.0, 1.0], template=template)
    rows = []
    t = time.time()
    run_sweep(model, tok, vecs, items, config, info=info, out_dir=work / "serial", progress=False, shards=args.shards)
    rows.append({"config": "serial (in-process, local backend)", "workers": 1, "fixed_s": round(t_load, 2),
                 "units_s": round(time.time() - t, 2)})
    del model
    ref = (work / "serial" / "items.csv").read_bytes()
    for n in (1, 2):
        t = time.time()
        ray.init(num_cpus=n, include_dashboard=False, log_to_driver=False)
        t_ray = time.time() - t
        backend = RayBackend(workers=n, cpus_per_worker=1)
        try:
            res = drive_sweep(backend, ModelRef(spec), items, vecs, config, work / f"ray{n}", args.shards,
                              progress=False)
        finally:
            backend.close()
            ray.shutdown()
        b = res.manifest["backend"]
        same = (work / f"ray{n}" / "items.csv").read_bytes() == ref
        rows.append({"config": f"ray, {n} worker{'s' * (n > 1)}", "workers": n,
                     "fixed_s": round(t_ray + b["start_s"], 2), "units_s": b["units_s"], "same_bytes": same})
    load.append(os.getloadavg()[0])
    t1, t2 = rows[1]["units_s"], rows[2]["units_s"]
    eff = t1 / (2 * t2)
    print(f"model {spec}, {args.items} items, layers {args.layers}, {args.shards} units, 1 torch thread per worker; "
          f"{os.cpu_count()} cores, load average {load[0]:.1f} before, {load[1]:.1f} after")
    print(f"{'config':36s} {'fixed (s)':>10s} {'units (s)':>10s}  same bytes")
    for r in rows:
        print(f"{r['config']:36s} {r['fixed_s']:10.2f} {r['units_s']:10.2f}  {r.get('same_bytes', '-')}")
    print(f"scaling efficiency T1/(2*T2) = {t1:.2f}/(2*{t2:.2f}) = {eff:.2f}")
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": rows, "efficiency": eff, "load": load,
                                               "cores": os.cpu_count(), "args": vars(args)}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
