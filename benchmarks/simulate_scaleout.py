"""Simulated GPU-hours and wall-clock of a full study on 2-64 GPUs, from the cost model (nothing is run).

    python benchmarks/simulate_scaleout.py            # the table in docs/scaling_out.md

Work per unit is the fast engine's all-positions count (docs/cost_model.md): an item costs
(T_f/T)(1 + M * sum_l (L-1-l)/L) passes, plus one unsteered walk per extra layer group. Units come from
steerscale.plan.make_plan (item shards of >= BATCH items first, then cost-balanced layer groups), one
plan per behaviour, and are scheduled longest-first on the free replica (what the Ray driver's queue does).
Every hardware figure below is an ASSUMPTION, not a measurement (no GPU was used).
"""

from __future__ import annotations

import heapq
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from steerscale.sweep.plan import make_plan

# The study: every layer x 9 multipliers (8 steered) x 500 items x 7 behaviours (CAA's), all positions.
N_ITEMS, M, BEHAVIOURS, T, TF_OVER_T, BATCH = 500, 8, 7, 150, 0.67, 32
FLOPS = 400e12  # assumed sustained bf16 FLOP/s per H100 (about 40% of peak); not measured
MODELS = {  # params, layers, GPUs per replica, model load seconds from a shared filesystem (assumed)
    "7B": (6.7e9, 32, 1, 30.0),
    "13B": (13e9, 40, 1, 60.0),
    "70B": (70e9, 80, 2, 180.0),  # bf16 over 2 GPUs with device_map: one GPU computes at a time
}
GPUS = (2, 4, 8, 16, 32, 64)


def unit_seconds(unit, n_layers: int, params: float) -> float:
    tails = sum((n_layers - 1 - l) / n_layers for l in unit.layers)
    passes = (unit.item_stop - unit.item_start) * TF_OVER_T * (1 + M * tails)
    return passes * 2 * params * T / FLOPS


def study(model: str, gpus: int) -> dict:
    params, L, per_replica, load = MODELS[model]
    replicas = gpus // per_replica
    # shards per behaviour: at least four units per replica overall (balance), at most what the plan allows
    want = max(1, -(-4 * replicas // BEHAVIOURS))
    max_item = N_ITEMS // BATCH
    n = want if want <= max_item else max_item * -(-want // max_item)
    plan = make_plan(N_ITEMS, list(range(L)), L, "all", n, BATCH)
    costs = sorted((unit_seconds(u, L, params) for u in plan.units for _ in range(BEHAVIOURS)), reverse=True)
    free = [0.0] * replicas
    for c in costs:  # longest first onto the replica that frees first
        heapq.heappush(free, heapq.heappop(free) + c)
    wall = load + max(free)
    return {"wall_h": wall / 3600, "gpu_h": wall * gpus / 3600, "work_h": sum(costs) / 3600, "units": len(costs),
            "plan": f"{plan.item_shards}x{plan.layer_groups}", "replicas": replicas, "load": load}


def main() -> None:
    print(f"| model | GPUs | replicas | units (items x groups per behaviour) | wall-clock (h) | GPU-hours | efficiency |")
    print("|---|---|---|---|---|---|---|")
    for model, (_, _, per_replica, _) in MODELS.items():
        base = study(model, per_replica)  # one replica: the reference for efficiency
        for g in GPUS:
            if g < per_replica:
                continue
            s = study(model, g)
            eff = base["wall_h"] * per_replica / (s["wall_h"] * g)
            print(f"| {model} | {g} | {s['replicas']} | {s['units']} ({s['plan']}) | {s['wall_h']:.2f} | "
                  f"{s['gpu_h']:.1f} | {eff:.2f} |")
    for model in MODELS:
        s = study(model, MODELS[model][2])
        print(f"{model}: {s['work_h']:.2f} h of unit work on one replica, + {s['load']:.0f} s model load")


if __name__ == "__main__":
    main()
