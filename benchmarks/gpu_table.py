"""Print the README's GPU tables from the JSON files `benchmarks/bench_gpu.py` writes.

    python benchmarks/gpu_table.py docs/bench/bench_gpu-h200.json docs/bench/bench_gpu-h200-fp32.json

The first file is a full run (every stage); later files may hold single stages (``--stages fp32_7b``) and
replace the first file's stage of the same name. Prints Markdown; reads nothing else.
"""

from __future__ import annotations

import json
import sys


def load(paths: list[str]) -> dict:
    first = json.load(open(paths[0], encoding="utf-8"))
    for p in paths[1:]:
        first["stages"].update(json.load(open(p, encoding="utf-8"))["stages"])
    return first


def fmt(x, digits=3) -> str:
    return "—" if x is None else f"{x:.{digits}g}"


def main(paths: list[str]) -> None:
    d = load(paths)
    st = d["stages"]
    print(f"{d['gpu']}, torch {d['torch']}, transformers {d['transformers']}; random-weight Llama-2-shaped models "
          f"(scores meaningless; time, work and exactness are real)\n")
    m = st.get("matmul", {})
    print(f"matmul peak: bf16 {fmt(m.get('bf16_tflops'))} TFLOP/s; float32 {fmt(m.get('fp32_tf32_off_tflops'))} "
          f"(TF32 off), {fmt(m.get('fp32_tf32_on_tflops'))} (TF32 on)")
    f = st.get("forward_7b", {})
    if f:
        print("7B-shaped plain forward (bf16, 128 tokens): " + ", ".join(
            f"batch {v['batch']}: {v['tokens_per_s']:.0f} tokens/s ({v['tflops']:.0f} TFLOP/s)"
            for k, v in f.items() if k.startswith("batch")))
    s = st.get("sweep_7b")
    if s:
        runs = s["runs"]
        base = runs["naive_b8"]["seconds"]
        print(f"\n7B shape, bf16, {s['items']} items x {s['layers']} layers x m = "
              f"{', '.join(f'{x:g}' for x in s['multipliers'])}:\n")
        print("| run | wall s | × vs naive (batch 8) | layer-tokens computed | max \\|Δ score\\| vs naive |")
        print("|---|---|---|---|---|")
        for name, r in runs.items():
            if "seconds" not in r:
                print(f"| {name} | {r.get('skipped', '—')} | | | |")
                continue
            work = (r.get("engine") or r.get("work") or {}).get("layer_tokens")
            diff = r.get("max_abs_diff_vs_naive")
            print(f"| {name} | {r['seconds']:.2f} | {base / r['seconds']:.2f} | {fmt(work, 4) if work else '—'} | "
                  f"{fmt(diff, 2)} |")
        sc = runs.get("screened_fast_b32", {})
        if sc:
            scr = sc["screen"]
            print(f"\nscreen + top-5 (b32): exact layers {len(scr['measured_layers'])} of {s['layers']} after the "
                  f"spot check widened K: {scr['widened']}; peaks {sc['peaks']} vs the full sweep's "
                  f"{sc['full_peaks']}")
    fp = st.get("fp32_7b")
    if fp:
        print(f"\n7B shape, float32, layers {fp['layers']}: fast vs naive max |Δ score| "
              f"{fmt(fp.get('tf32_off_fast_vs_naive'), 2)} with TF32 off (run-time check "
              f"{fmt(fp.get('tf32_off_check', {}).get('max_abs_diff', {}).get('score'), 2)}, tolerance "
              f"{fp.get('tf32_off_check', {}).get('tolerance')}); TF32 on moves the naive engine itself by "
              f"{fmt(fp.get('tf32_on_naive_vs_naive_tf32_off'), 2)}"
              + (f"; fast with TF32 on: {fp['tf32_on_fast'].split(':')[0]}" if "tf32_on_fast" in fp else
                 f"; fast with TF32 on vs naive TF32 off {fmt(fp.get('tf32_on_fast_vs_naive_tf32_off'), 2)}"))
    dm = st.get("device_map")
    if dm and "naive_s" in dm:
        print(f"\ndevice_map ({dm['device_map']}): naive {dm['naive_s']:.2f} s, fast {dm['fast_s']:.2f} s, "
              f"max |Δ score| {fmt(dm['max_abs_diff_fast_vs_naive'], 2)} (bf16)")
    t = st.get("sweep_13b")
    if t and "fast_all_b32_s" in t:
        print(f"\n13B shape (bf16, b32): forward {t['forward_b32']['tokens_per_s']:.0f} tokens/s; fast sweep "
              f"{t['fast_all_b32_s']:.2f} s, screen + top-5 {t['screened_s']:.2f} s "
              f"({len(t['screen']['measured_layers'])} exact layers); peaks {t['peaks_screened']} vs full "
              f"{t['peaks_full']}")
    l70 = st.get("layers_70b")
    if l70 and "forward_b8" in l70:
        print(f"\n70B shape, {l70['layers_built']} of {l70['of']} layers (bf16, b8): "
              f"{l70['forward_s_per_layer'] * 1e3:.2f} ms forward per layer, fast sweep "
              f"{l70['fast_sweep_s_per_layer']:.3f} s per layer")
    f70 = st.get("full_70b")
    if f70:
        print(f"\nwhole 70B shape: {f70.get('skipped') or f70}")


if __name__ == "__main__":
    main(sys.argv[1:] or ["docs/bench/bench_gpu-h200.json", "docs/bench/bench_gpu-h200-fp32.json"])
