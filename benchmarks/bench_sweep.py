"""Sweep benchmark: the steering-vectors library vs steerscale's naive and fast engines.

One process, one machine, the same items (built-in refusal-test), the same vectors
(trained on built-in refusal-train), SmolLM2-135M-Instruct, layers x multipliers:

  (a) steering-vectors: SteeringVector(layer_activations, layer_type="decoder_block").apply(model,
      multiplier=m) around a full forward (all-position logits, as its README's ``model.forward(...)``),
      same batches/padding/position ids as ours, scored with the same formula; m = 0 run once
  (b) steerscale naive engine (hooks, one full forward per point, logits at one position)
  (c) fast engine, float32, all positions
  (d) fast engine, float32, instruction-end positions
  (e) fast engine, bfloat16 (a bf16 copy of the model), all positions

Reported per configuration: wall time; peak memory = peak process RSS above the RSS at the start of
that configuration (after gc and malloc_trim), sampled every 2 ms by a psutil thread (torch
allocations are invisible to tracemalloc); work actually done, counted by forward hooks on every decoder layer and on the LM head
(layer x token evaluations, head rows); achieved GFLOP/s (2 x weights per layer-token + 2 x hidden x
vocab per head row; attention-score FLOPs excluded, ~2% here) against a matmul peak measured in this
run for the same dtype; speed ratios against (a); largest score differences: (a) and (c) against (b),
(d) against the naive engine in instruction-end mode (on --check-layers), (e) against (c).
Also the cost model of docs/cost_model.md, predicted against measured.

  python benchmarks/bench_sweep.py                      # the default run (50 items, all 30 layers)
  python benchmarks/bench_sweep.py --items 16           # about 3x shorter
  python benchmarks/bench_sweep.py --items 8 --layers 0-29:6   # a quick run
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import sys
import threading
import time
from pathlib import Path

import numpy as np
import torch

from steerscale import load_dataset, load_model, train_vectors
from steerscale.core.batching import batches, pad_id_of, pad_left
from steerscale.core.prompts import encode_items
from steerscale.core.evaluate import ABScores, letter_scores
from steerscale.engines.partial import common_prefix as _common_prefix
from steerscale.core.models import get_layers
from steerscale.core.steering import layer_hooks
from steerscale.engines.fast import LAYERS_PER_GROUP
from steerscale.config import SweepConfig
from steerscale.sweep.run import run_sweep


class PeakRSS:
    """Peak resident memory above the starting RSS, sampled by a thread."""

    def __init__(self, interval=0.002):
        import psutil

        self.proc = psutil.Process()
        self.interval = interval

    def __enter__(self):
        import ctypes
        import gc

        gc.collect()
        try:  # hand freed heap back to the OS, so each configuration starts from the same floor
            ctypes.CDLL("libc.so.6").malloc_trim(0)
        except (OSError, AttributeError):
            pass
        self.start = self.proc.memory_info().rss
        self.peak = self.start
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()
        return self

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, self.proc.memory_info().rss)
            time.sleep(self.interval)

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join()
        self.peak = max(self.peak, self.proc.memory_info().rss)
        self.delta_mb = (self.peak - self.start) / 2**20


class WorkCounter:
    """Counts decoder-layer x token evaluations and LM-head rows through forward hooks."""

    def __init__(self, model):
        self.model = model
        self.layer_tokens = 0
        self.head_rows = 0

    def __enter__(self):
        def count_layer(h):
            self.layer_tokens += h.shape[0] * h.shape[1]

        def count_head(mod, args, out):
            self.head_rows += out.shape[0] * out.shape[1]

        self._ctx = layer_hooks(self.model, {l: count_layer for l in range(len(get_layers(self.model)))})
        self._ctx.__enter__()
        self._h = self.model.get_output_embeddings().register_forward_hook(count_head)
        return self

    def __exit__(self, *exc):
        self._h.remove()
        self._ctx.__exit__(*exc)


def matmul_peak(dtype, n=1536, reps=6) -> float:
    a = torch.randn(n, n).to(dtype)
    b = torch.randn(n, n).to(dtype)
    a @ b
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best / 1e9


def table(rows, vals_of) -> dict:
    """{(layer, multiplier): np.array of scores in item order} from sweep rows."""
    out = {}
    for r in rows:
        out.setdefault((r["layer"], r["multiplier"]), []).append(vals_of(r))
    return {k: np.array(v) for k, v in out.items()}


def _import_steering_vectors():
    """steering-vectors imports scikit-learn only for its regression aggregators (not used here); `make bench`
    installs it with --no-deps, so stand in an empty sklearn.linear_model when scikit-learn is absent."""
    try:
        import sklearn.linear_model  # noqa: F401
    except ImportError:
        import types

        sk = types.ModuleType("sklearn")
        lm = types.ModuleType("sklearn.linear_model")
        lm.LinearRegression = type("LinearRegression", (), {})
        lm.LogisticRegression = type("LogisticRegression", (), {})
        sk.linear_model = lm
        sys.modules.setdefault("sklearn", sk)
        sys.modules.setdefault("sklearn.linear_model", lm)


@torch.no_grad()
def library_sweep(model, tok, vecs, encoded, layers, multipliers, batch_size):
    """(a): the steering-vectors library, as its README applies it, around full forward passes."""
    _import_steering_vectors()
    from steering_vectors import SteeringVector

    pad_id = pad_id_of(tok)
    batched = [[encoded[i] for i in idx] for idx in batches(len(encoded), batch_size)]

    def score_all():
        parts = []
        for encs in batched:
            b = pad_left([e.prefix_ids for e in encs], pad_id)
            logits = model(**b.model_inputs()).logits  # all positions, as model.forward(...) in the README
            parts.append(letter_scores(torch.log_softmax(logits[:, -1].float(), -1), encs))
        return np.concatenate([p.score for p in parts])

    out = {}
    if 0.0 in multipliers:
        base = score_all()
        for l in layers:
            out[(l, 0.0)] = base
    for l in layers:
        sv = SteeringVector(layer_activations={l: vecs[l].clone()}, layer_type="decoder_block")
        for m in multipliers:
            if m == 0.0:
                continue
            with sv.apply(model, multiplier=m):
                out[(l, m)] = score_all()
    return out


def flops(work, per_layer_params, hidden, vocab) -> float:
    return 2.0 * per_layer_params * work["layer_tokens"] + 2.0 * hidden * vocab * work["head_rows"]


def cost_model(L, layers, n_steered, N, T, S, V, H, P, T_fast=None, C=0, groups=1, check_items=0):
    """Predicted cost in full-forward-pass equivalents (docs/cost_model.md).

    One pass = L layers over T tokens (padded, in item order) + one head row; head row = rho of a pass.
    Fast engine, all positions: T_fast tokens per item after the common prefix (padded in length-sorted
    batches); the C prefix tokens run once per layer group (and the baseline call) unsteered and once per steered point.
    Fast engine, both modes: its one-point check runs the naive engine on ``check_items`` items (the first batch).
    """
    T_fast = T if T_fast is None else T_fast
    rho = V * H / (L * T * P)  # one full-vocabulary head row, relative to L layers x T tokens
    unit = 1 + rho
    tails = sum((L - 1 - l) / L for l in layers)
    naive = N * (unit + len(layers) * n_steered * unit)
    library = N * ((1 + T * rho) + len(layers) * n_steered * (1 + T * rho))
    fast_all = (N * (T_fast / T * (1 + n_steered * tails) + rho * (1 + n_steered * len(layers)))
                + C / T * (groups + 1 + n_steered * tails)  # +1: the baseline call
                + check_items * unit)
    fast_ie = N * (unit + n_steered * (tails * S / T + len(layers) * rho)) + check_items * unit
    return {"a_library": library, "b_naive": naive, "c_fast_all": fast_all, "d_fast_instruction_end": fast_ie,
            "e_fast_bf16": fast_all, "rho": rho}


def parse_layers(text, n):
    if text == "all":
        return list(range(n))
    if ":" in text:  # a-b:step
        rng, step = text.split(":")
        a, b = rng.split("-")
        return list(range(int(a), int(b) + 1, int(step)))
    from steerscale.cli.options import parse_layers as pl

    return pl(text)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--items", type=int, default=50, help="evaluation items from refusal-test (default 50)")
    ap.add_argument("--threads", type=int, default=0,
                    help="torch threads for every configuration (default: torch's own choice; on a CPU shared with "
                         "other jobs, 1 avoids OpenMP threads waiting on each other)")
    ap.add_argument("--layers", default="all", help="'all', '0-29:3' (range with step), or a comma list")
    ap.add_argument("--multipliers", default="-1,0,1")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--train-limit", type=int, default=64, help="refusal-train items for the vectors")
    ap.add_argument("--check-layers", default="0,7,15,22,29",
                    help="layers on which (d) is compared with the naive engine in instruction-end mode")
    ap.add_argument("--configs", default="a,b,c,d,e", help="which configurations to run")
    ap.add_argument("--out", default="results/bench/bench.json")
    args = ap.parse_args(argv)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    load_at_start = os.getloadavg()

    t_load = time.time()
    model, tok, info = load_model("smollm2-135m")
    t_load = time.time() - t_load
    n = info.n_layers
    layers = parse_layers(args.layers, n)
    mults = [float(x) for x in args.multipliers.split(",")]
    steered = [m for m in mults if m != 0]
    items = load_dataset("refusal-test", limit=args.items)
    vecs = train_vectors(model, tok, load_dataset("refusal-train", limit=args.train_limit), batch_size=8,
                         info=info, progress=False)
    encoded = encode_items(tok, items)
    T = float(np.mean([len(e.prefix_ids) for e in encoded]))
    T_pad = float(np.mean([max(len(encoded[i].prefix_ids) for i in idx)
                           for idx in batches(len(encoded), args.batch_size) for _ in idx]))
    S = float(np.mean([max(len(encoded[i].prefix_ids) - encoded[i].instruction_end for i in idx)
                       for idx in batches(len(encoded), args.batch_size) for _ in idx]))
    # the fast engine's own batches: length-sorted, the common prefix run once (engines/fast.py)
    C = _common_prefix([e.prefix_ids for e in encoded])
    srt = sorted(len(e.prefix_ids) - C for e in encoded)
    T_fast = float(np.mean([max(srt[i] for i in idx) for idx in batches(len(srt), args.batch_size) for _ in idx]))
    group = min(LAYERS_PER_GROUP, -(-len(layers) // 5))
    groups = -(-len(layers) // group)
    per_layer = sum(p.numel() for p in get_layers(model)[0].parameters())
    V, H = model.get_output_embeddings().weight.shape
    peaks = {"float32": matmul_peak(torch.float32), "bfloat16": matmul_peak(torch.bfloat16)}
    configs = set(args.configs.split(","))
    print(f"model {info.name}: {n} layers, hidden {H}, vocab {V}; {len(items)} items (mean {T:.1f} tokens, "
          f"{T_pad:.1f} padded; fast engine: common prefix {C}, {T_fast:.1f} padded after it; "
          f"steered suffix {S:.1f}); layers {len(layers)}; multipliers {mults}; "
          f"threads {torch.get_num_threads()}; matmul peak fp32 {peaks['float32']:.0f}, bf16 {peaks['bfloat16']:.0f} GFLOP/s",
          flush=True)

    def sweep_cfg(engine, positions="all", lyr=None):
        return SweepConfig(layers=lyr or layers, multipliers=mults, positions=positions, batch_size=args.batch_size,
                           engine=engine, n_bootstrap=0)

    results, scores = {}, {}

    def run(key, fn, m=model, dtype="float32"):
        with PeakRSS() as mem, WorkCounter(m) as wc:
            t = time.perf_counter()
            sc = fn()
            wall = time.perf_counter() - t
        work = {"layer_tokens": wc.layer_tokens, "head_rows": wc.head_rows}
        f = flops(work, per_layer, H, V)
        passes = (work["layer_tokens"] + work["head_rows"] * V * H / per_layer) / (n * T_pad * len(items))
        results[key] = {"wall_s": wall, "peak_rss_delta_mb": mem.delta_mb, **work,
                        "pass_equivalents_per_item": passes,
                        "gflop": f / 1e9, "gflops_per_s": f / wall / 1e9,
                        "fraction_of_matmul_peak": f / wall / 1e9 / peaks[dtype], "dtype": dtype}
        scores[key] = sc
        print(f"  {key}: {wall:.1f} s, peak RSS +{mem.delta_mb:.0f} MB, {work['layer_tokens'] / 1e6:.2f} M layer-tokens",
              flush=True)

    if "a" in configs:
        run("a_library", lambda: library_sweep(model, tok, vecs, encoded, layers, mults, args.batch_size))
    if "b" in configs:
        run("b_naive", lambda: table(run_sweep(model, tok, vecs, items, sweep_cfg("naive"), info=info,
                                                progress=False).rows, lambda r: r["score"]))
    if "c" in configs:
        run("c_fast_all", lambda: table(run_sweep(model, tok, vecs, items, sweep_cfg("fast"), info=info,
                                                   progress=False).rows, lambda r: r["score"]))
    if "d" in configs:
        run("d_fast_instruction_end", lambda: table(run_sweep(model, tok, vecs, items,
                                                               sweep_cfg("fast", "instruction_end"), info=info,
                                                               progress=False).rows, lambda r: r["score"]))
    if "e" in configs:
        m16 = copy.deepcopy(model).to(torch.bfloat16)
        run("e_fast_bf16", lambda: table(run_sweep(m16, tok, vecs, items, sweep_cfg("fast"), info=info,
                                                    progress=False).rows, lambda r: r["score"]), m=m16,
            dtype="bfloat16")
        del m16

    def maxdiff(a, b):
        keys = [k for k in scores.get(a, {}) if k in scores.get(b, {})]
        return float(max(np.max(np.abs(scores[a][k] - scores[b][k])) for k in keys)) if keys else None

    diffs = {"a_library_vs_b_naive": maxdiff("a_library", "b_naive"),
             "c_fast_all_vs_b_naive": maxdiff("c_fast_all", "b_naive"),
             "e_fast_bf16_vs_c_fast_all": maxdiff("e_fast_bf16", "c_fast_all")}
    if "d" in configs:
        check = [l for l in parse_layers(args.check_layers, n) if l in layers]
        ref = table(run_sweep(model, tok, vecs, items, sweep_cfg("naive", "instruction_end", check), info=info,
                              progress=False).rows, lambda r: r["score"])
        scores["naive_instruction_end"] = ref
        diffs["d_fast_instruction_end_vs_naive_instruction_end"] = maxdiff("d_fast_instruction_end", "naive_instruction_end")
        diffs["d_checked_layers"] = check

    model_cost = cost_model(n, layers, len(steered), len(items), T_pad, S, V, H, per_layer, T_fast, C, groups,
                            check_items=min(len(items), args.batch_size))
    base_key = "a_library" if "a_library" in results else None
    for key, r in results.items():
        if base_key:
            r["speedup_vs_a"] = results[base_key]["wall_s"] / r["wall_s"]
        if "b_naive" in results:
            r["speedup_vs_b"] = results["b_naive"]["wall_s"] / r["wall_s"]
        r["predicted_pass_equivalents_per_item"] = model_cost[key] / len(items)
        r["predicted_speedup_vs_b"] = model_cost["b_naive"] / model_cost[key]
    hdr = f"{'config':26s} {'wall s':>8s} {'x vs (a)':>8s} {'x vs (b)':>8s} {'pred x(b)':>9s} {'peak MB':>8s} " \
          f"{'Mlayer-tok':>10s} {'passes':>7s} {'pred':>7s} {'GFLOP/s':>8s} {'%peak':>6s}"
    print("\n" + hdr)
    for key, r in results.items():
        print(f"{key:26s} {r['wall_s']:8.1f} {r.get('speedup_vs_a', float('nan')):8.2f} "
              f"{r.get('speedup_vs_b', float('nan')):8.2f} {r['predicted_speedup_vs_b']:9.2f} "
              f"{r['peak_rss_delta_mb']:8.0f} {r['layer_tokens'] / 1e6:10.2f} {r['pass_equivalents_per_item']:7.2f} "
              f"{r['predicted_pass_equivalents_per_item']:7.2f} {r['gflops_per_s']:8.1f} "
              f"{100 * r['fraction_of_matmul_peak']:5.0f}%")
    targets = {}
    ra, rb = results.get("a_library"), results.get("b_naive")
    for key, want in (("c_fast_all", 2.5), ("d_fast_instruction_end", 10.0), ("e_fast_bf16", 5.0)):
        if ra and key in results:
            got = results[key]["speedup_vs_a"]
            targets[f"{key} >= {want}x (a)"] = {"measured": got, "met": got >= want}
    if rb and "c_fast_all" in results:
        got = results["c_fast_all"]["peak_rss_delta_mb"] / max(rb["peak_rss_delta_mb"], 1e-9)
        targets["c_fast_all peak memory <= 2x (b)"] = {"measured": got, "met": got <= 2.0}
    full = len(items) >= 50 and len(layers) == n
    print(f"\ntargets (issue 3{'' if full else '; this run is smaller than its >= 50 items x all layers'}):")
    for k, v in targets.items():
        print(f"  {k:40s} {v['measured']:6.2f}  {'met' if v['met'] else 'NOT met'}")
    print("\nlargest |score| differences:")
    for k, v in diffs.items():
        print(f"  {k}: {v if isinstance(v, list) or v is None else f'{v:.3g}'}")
    out = {
        "model": info.to_dict(), "n_items": len(items), "layers": layers, "multipliers": mults,
        "batch_size": args.batch_size, "mean_tokens": T, "mean_padded_tokens": T_pad, "mean_steered_suffix": S,
        "fast_common_prefix_tokens": C, "fast_mean_padded_tokens_after_prefix": T_fast, "fast_layer_groups": groups,
        "matmul_peak_gflops": peaks, "torch_threads": torch.get_num_threads(), "cpu_count": os.cpu_count(),
        "load_average_at_start": load_at_start, "load_average_at_end": os.getloadavg(), "platform": platform.platform(), "python": sys.version.split()[0],
        "torch": torch.__version__, "model_load_s": t_load,
        "memory_measure": "peak process RSS above the RSS at the start of each configuration, psutil thread every 2 ms",
        "work_measure": "forward hooks on every decoder layer (rows x tokens) and on the LM head (rows x positions)",
        "flop_measure": "2 x per-layer weights x layer-tokens + 2 x hidden x vocab x head rows; attention scores excluded",
        "results": results, "max_score_diff": diffs, "targets": targets, "full_size_run": full,
        "cost_model_pass_equivalents_per_item": {k: v / len(items) for k, v in model_cost.items() if k != "rho"},
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
