"""GPU bench: one prepared script, stages in priority order inside a time budget, JSON written after every stage.

Models are Llama-2-shaped (7B, 13B, 70B layer shapes) with random weights built directly on the device: the
same compute as the real checkpoints, so throughput, exactness (fast = naive) and agreement with the
steering-vectors library are valid; scores are meaningless. The head is scaled so that logits are not flat
(logit std ~3 on the bench items) and the vectors are random directions scaled to a fraction of the mean
residual norm at each layer (``--vector-scale``, residual-normalised), so steering moves scores without
saturating them. Tokens come from a character tokenizer over the model's vocabulary (no tokenizer files travel).

Stages, in priority order (each is skipped, with the reason, when the budget left is below its estimate):

  matmul       bf16 matmul peak (TFLOP/s) and float32 with TF32 on/off
  forward_7b   a plain forward pass's tokens/s at batch 8 and 32 (the roofline for every pass below)
  sweep_7b     the 7B sweep side by side: steering-vectors library (if importable), naive, fast (all positions and
               instruction end, batch 8 and 32), the gradient screen and a screened sweep (screen + top-K): wall
               time, max |score difference| against naive, the engines' work counters, peaks of full vs screened
  fp32_7b      fast = naive in float32 at the 7B shape with TF32 off, and what TF32 on does to the difference
  device_map   the 7B model split over GPU + CPU (accelerate.dispatch_model; the last decoder layer on the CPU):
               real cross-device moves, fast vs naive
  sweep_13b    the 13B shape: forward tokens/s, fast sweep, screen
  layers_70b   20 of the 70B shape's 80 layers (bf16): forward and fast sweep, timed per layer
  full_70b     optional: the whole 70B shape in one device when it fits (skipped with the reason otherwise)

  python benchmarks/bench_gpu.py --out results/bench/bench_gpu.json          # on a GPU (8-minute budget)
  python benchmarks/bench_gpu.py --dry-run --out /tmp/bench_gpu_dry.json     # every stage, tiny shapes, CPU

No GPU figure from this script is in the docs unless it ran on one: see README ("Speed").
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import sys
import time
import traceback
from pathlib import Path

import numpy as np
import torch

from steerscale.errors import SteerscaleError

SHAPES = {
    "7b": dict(hidden_size=4096, intermediate_size=11008, num_hidden_layers=32, num_attention_heads=32,
               num_key_value_heads=32, vocab_size=32000),
    "13b": dict(hidden_size=5120, intermediate_size=13824, num_hidden_layers=40, num_attention_heads=40,
                num_key_value_heads=40, vocab_size=32000),
    "70b": dict(hidden_size=8192, intermediate_size=28672, num_hidden_layers=80, num_attention_heads=64,
                num_key_value_heads=8, vocab_size=32000),
}
TINY = {k: dict(hidden_size=64, intermediate_size=128, num_hidden_layers=4, num_attention_heads=4,
                num_key_value_heads=2 if k == "70b" else 4, vocab_size=256) for k in SHAPES}
# Estimated seconds of each stage on an H200 (skipped when less budget is left); the dry run ignores them.
ESTIMATE_S = {"matmul": 10, "forward_7b": 30, "sweep_7b": 150, "fp32_7b": 60, "device_map": 60, "sweep_13b": 90,
              "layers_70b": 90, "full_70b": 200}
STAGES = list(ESTIMATE_S)


class CharTokenizer:
    """Characters -> ids in [3, vocab): enough of a tokenizer for steerscale's 'plain' template."""

    chat_template = None
    bos_token = None
    eos_token = "<eos>"
    pad_token = "<pad>"
    pad_token_id = 0
    eos_token_id = 1
    padding_side = "left"

    def __init__(self, vocab: int):
        self.vocab = vocab

    def __call__(self, text, add_special_tokens=True):
        class R:
            pass

        r = R()
        r.input_ids = [3 + (ord(c) % (self.vocab - 3)) for c in text]
        return r

    def convert_ids_to_tokens(self, ids):
        return [str(i) for i in ids]

    def batch_decode(self, seqs, skip_special_tokens=True):
        return ["" for _ in seqs]


def bench_items(n: int, words: int = 16):
    from steerscale.core.data import parse_item

    out = []
    for i in range(n):
        q = f"request {i}: " + " ".join(f"w{(i * 7 + j) % 97}" for j in range(words + i % 5)) + "?"
        out.append(parse_item({"question": f"{q}\n\nChoices:\n(A) yes\n(B) no",
                               "answer_matching_behavior": "(B)" if i % 2 else "(A)",
                               "answer_not_matching_behavior": "(A)" if i % 2 else "(B)"}, idx=i))
    return out


def sync(dev):
    if str(dev).startswith("cuda"):
        torch.cuda.synchronize()


def build(shape: dict, dtype, device, n_layers: int | None = None, seed: int = 0):
    """A random-weight Llama of `shape` built on `device` (HF init: normal(0, 0.02))."""
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(**dict(shape, num_hidden_layers=n_layers or shape["num_hidden_layers"]),
                      max_position_embeddings=4096, bos_token_id=1, eos_token_id=1, pad_token_id=0)
    torch.manual_seed(seed)
    old = torch.get_default_dtype()
    try:
        torch.set_default_dtype(dtype)
        with torch.device(device):
            model = LlamaForCausalLM(cfg)
    finally:
        torch.set_default_dtype(old)
    model.eval().requires_grad_(False)
    return model


@torch.no_grad()
def scale_head_and_vectors(model, tok, items, scale: float, batch: int = 8):
    """Scale the head so logits have std ~3 on `items`; random vectors at `scale` x the mean residual norm per
    layer (measured at the answer position). Returns [L, H] float32 vectors on the CPU."""
    from steerscale.core.batching import model_device, pad_left
    from steerscale.core.prompts import encode_items
    from steerscale.core.steering import capture

    enc = encode_items(tok, items[:batch], "plain")
    dev = model_device(model)
    b = pad_left([e.prefix_ids for e in enc], 0).to(dev)
    with capture(model) as caps:
        logits = model(**b.model_inputs(), logits_to_keep=1).logits[:, -1].float()
    model.get_output_embeddings().weight.mul_(3.0 / max(float(logits.std()), 1e-6))
    g = torch.Generator().manual_seed(1)
    L = len(caps)
    v = torch.randn(L, model.config.hidden_size, generator=g)
    norms = torch.tensor([float(caps[l][0].float().norm(dim=-1).mean()) for l in range(L)])
    return v / v.norm(dim=-1, keepdim=True) * (scale * norms)[:, None]


def tflops_matmul(dtype, n, dev, reps=10, tf32=None) -> float:
    if tf32 is not None and str(dev).startswith("cuda"):
        torch.backends.cuda.matmul.allow_tf32 = tf32
    a = torch.randn(n, n, device=dev).to(dtype)
    b = torch.randn(n, n, device=dev).to(dtype)
    a @ b
    sync(dev)
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        a @ b
        sync(dev)
        best = min(best, time.perf_counter() - t)
    return 2 * n ** 3 / best / 1e12


@torch.no_grad()
def forward_tps(model, dev, batch: int, tokens: int, reps: int = 3) -> dict:
    ids = torch.randint(3, model.config.vocab_size, (batch, tokens), device=dev)
    model(input_ids=ids, logits_to_keep=1)
    sync(dev)
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        model(input_ids=ids, logits_to_keep=1)
        sync(dev)
        best = min(best, time.perf_counter() - t)
    n_params = sum(p.numel() for n, p in model.named_parameters() if "embed" not in n)
    return {"batch": batch, "tokens": tokens, "seconds": best, "tokens_per_s": batch * tokens / best,
            "tflops": 2 * n_params * batch * tokens / best / 1e12}


def scores_of(rows) -> dict:
    out = {}
    for r in rows:
        out.setdefault((r["layer"], r["multiplier"]), []).append(r["score"])
    return {k: np.array(v) for k, v in out.items()}


def maxdiff(a: dict, b: dict) -> float:
    return max(float(np.abs(a[k] - b[k]).max()) for k in a if k in b)


def timed_sweep(model, tok, vecs, items, info, dev, **cfg) -> dict:
    from steerscale.config import SweepConfig
    from steerscale.sweep.run import run_sweep

    sync(dev)
    t = time.perf_counter()
    res = run_sweep(model, tok, vecs, items, SweepConfig(template="plain", n_bootstrap=50, **cfg), info=info,
                    progress=False)
    sync(dev)
    out = {"seconds": time.perf_counter() - t, "engine": res.manifest["engine"], "scores": scores_of(res.rows),
           "rows": res.rows}
    if "screen" in res.manifest:
        out["screen"] = {k: res.manifest["screen"][k] for k in ("measured_layers", "widened", "work", "spot_findings")}
    return out


@torch.no_grad()
def library_sweep(model, tok, vecs, items, layers, mults, batch, dev) -> dict | None:
    """The steering-vectors library as its README applies it (full forward, all-position logits); None if absent."""
    try:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from bench_sweep import _import_steering_vectors

        _import_steering_vectors()
        from steering_vectors import SteeringVector
    except ImportError:
        return None
    from steerscale.core.batching import pad_left
    from steerscale.core.prompts import encode_items
    from steerscale.core.evaluate import letter_scores

    enc = encode_items(tok, items, "plain")
    groups = [enc[i:i + batch] for i in range(0, len(enc), batch)]

    def score_all():
        parts = []
        for encs in groups:
            b = pad_left([e.prefix_ids for e in encs], 0).to(dev)
            logits = model(**b.model_inputs()).logits
            parts.append(letter_scores(torch.log_softmax(logits[:, -1].float(), -1).cpu(), encs).score)
        return np.concatenate(parts)

    sync(dev)
    t = time.perf_counter()
    out = {}
    for l in layers:
        sv = SteeringVector(layer_activations={l: vecs[l].to(dev)}, layer_type="decoder_block")
        for m in mults:
            if m != 0:
                with sv.apply(model, multiplier=m):
                    out[(l, m)] = score_all()
    sync(dev)
    return {"seconds": time.perf_counter() - t, "scores": out}


def peaks(rows) -> dict:
    from steerscale.analysis.model import analyze

    a = analyze(rows, n_boot=50)
    return {s: p.layer for s, p in a.peaks.items()}


class Bench:
    def __init__(self, args):
        self.args = args
        self.dev = torch.device("cpu" if args.dry_run else args.device)
        self.t0 = time.time()
        self.out = {"dry_run": args.dry_run, "device": str(self.dev), "budget_s": args.budget_s, "stages": {},
                    "platform": platform.platform(), "torch": torch.__version__}
        try:
            import transformers

            self.out["transformers"] = transformers.__version__
        except ImportError:
            pass
        if self.dev.type == "cuda":
            self.out["gpu"] = torch.cuda.get_device_name(self.dev)
            self.out["gpu_memory_gb"] = torch.cuda.get_device_properties(self.dev).total_memory / 2 ** 30

    def shape(self, name):
        return TINY[name] if self.args.dry_run else SHAPES[name]

    def n_items(self, n):
        return 6 if self.args.dry_run else n

    def write(self):
        p = Path(self.args.out)
        p.parent.mkdir(parents=True, exist_ok=True)
        self.out["elapsed_s"] = round(time.time() - self.t0, 1)
        tmp = p.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.out, indent=2, default=str) + "\n")
        os.replace(tmp, p)

    def run(self, stages):
        for name in stages:
            left = self.args.budget_s - (time.time() - self.t0)
            if not self.args.dry_run and left < ESTIMATE_S[name]:
                self.out["stages"][name] = {"skipped": f"budget: {left:.0f} s left, the stage needs ~{ESTIMATE_S[name]} s"}
                self.write()
                continue
            t = time.time()
            try:
                rec = getattr(self, "stage_" + name)()
            except Exception as e:  # a stage that fails is recorded; the next stages still run
                rec = {"error": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc()[-2000:]}
            rec["stage_s"] = round(time.time() - t, 1)
            self.out["stages"][name] = rec
            self.write()
            print(f"[{time.time() - self.t0:6.1f} s] {name}: {json.dumps(rec, default=str)[:400]}", flush=True)
            gc.collect()
            if self.dev.type == "cuda":
                torch.cuda.empty_cache()
        return self.out

    # ------------------------------------------------------------------ stages
    def stage_matmul(self):
        n = 256 if self.args.dry_run else 8192
        bf16 = torch.bfloat16
        return {"n": n, "bf16_tflops": tflops_matmul(bf16, n, self.dev),
                "fp32_tf32_off_tflops": tflops_matmul(torch.float32, n, self.dev, tf32=False),
                "fp32_tf32_on_tflops": tflops_matmul(torch.float32, n, self.dev, tf32=True)}

    def _model(self, name, dtype=torch.bfloat16, n_layers=None):
        from steerscale.core.models import model_info

        model = build(self.shape(name), dtype, self.dev, n_layers)
        tok = CharTokenizer(model.config.vocab_size)
        items = bench_items(self.n_items(self.args.items))
        vecs = scale_head_and_vectors(model, tok, items, self.args.vector_scale)
        return model, tok, items, vecs, model_info(model, spec=f"random-{name}", name=f"random-{name}")

    def stage_forward_7b(self):
        model, *_ = self._model("7b")
        tokens = 16 if self.args.dry_run else 128
        return {f"batch_{b}": forward_tps(model, self.dev, b, tokens) for b in (8, 32)}

    def stage_sweep_7b(self):
        model, tok, items, vecs, info = self._model("7b")
        mults = [-1.0, 0.0, 1.0]
        L = info.n_layers
        rec = {"items": len(items), "layers": L, "multipliers": mults, "runs": {}}
        naive = timed_sweep(model, tok, vecs, items, info, self.dev, engine="naive", batch_size=8, multipliers=mults)
        rec["runs"]["naive_b8"] = {"seconds": naive["seconds"], "engine": naive["engine"]}
        for positions in ("all", "instruction_end"):
            ref = naive if positions == "all" else timed_sweep(model, tok, vecs, items, info, self.dev, engine="naive",
                                                               batch_size=8, multipliers=mults, positions=positions)
            if positions != "all":
                rec["runs"]["naive_ie_b8"] = {"seconds": ref["seconds"]}
            for b in (8, 32):
                r = timed_sweep(model, tok, vecs, items, info, self.dev, engine="fast", batch_size=b,
                                multipliers=mults, positions=positions)
                rec["runs"][f"fast_{positions}_b{b}"] = {"seconds": r["seconds"], "engine": r["engine"],
                                                         "max_abs_diff_vs_naive": maxdiff(r["scores"], ref["scores"])}
        from steerscale.core.prompts import encode_items
        from steerscale.engines.screen import GradScreen
        from steerscale.config import SweepConfig

        for b in (8, 32):
            scr = GradScreen()
            cfg = SweepConfig(template="plain", batch_size=b).validate(L)
            sync(self.dev)
            t = time.perf_counter()
            scr.gradients(model, tok, vecs, encode_items(tok, items, "plain"), cfg)
            sync(self.dev)
            rec["runs"][f"screen_b{b}"] = {"seconds": time.perf_counter() - t, "work": scr.describe()}
        s = timed_sweep(model, tok, vecs, items, info, self.dev, engine="fast", batch_size=32, multipliers=mults,
                        screen="grad", confirm_top=5, spot_check=3)
        rec["runs"]["screened_fast_b32"] = {"seconds": s["seconds"], "engine": s["engine"], "screen": s["screen"],
                                            "peaks": peaks(s["rows"]), "full_peaks": peaks(naive["rows"])}
        lib = library_sweep(model, tok, vecs, items, list(range(L)), mults, 8, self.dev)
        rec["runs"]["steering_vectors_b8"] = ({"skipped": "steering-vectors is not importable"} if lib is None else
                                              {"seconds": lib["seconds"],
                                               "max_abs_diff_vs_naive": maxdiff(lib["scores"], naive["scores"])})
        return rec

    def stage_fp32_7b(self):
        model, tok, items, vecs, info = self._model("7b", torch.float32)
        layers = sorted({0, info.n_layers // 4, info.n_layers // 2, info.n_layers - 1})
        kw = dict(batch_size=8, multipliers=[-1.0, 0.0, 1.0], layers=layers)
        cuda = self.dev.type == "cuda"
        if cuda:
            torch.backends.cuda.matmul.allow_tf32 = False
            torch.backends.cudnn.allow_tf32 = False
        naive = timed_sweep(model, tok, vecs, items, info, self.dev, engine="naive", **kw)
        fast = timed_sweep(model, tok, vecs, items, info, self.dev, engine="fast", **kw)
        rec = {"layers": layers, "tf32_off_fast_vs_naive": maxdiff(fast["scores"], naive["scores"]),
               "tf32_off_check": fast["engine"].get("check")}
        if cuda:
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True
        try:
            naive32 = timed_sweep(model, tok, vecs, items, info, self.dev, engine="naive", **kw)
            rec["tf32_on_naive_vs_naive_tf32_off"] = maxdiff(naive32["scores"], naive["scores"])
            fast32 = timed_sweep(model, tok, vecs, items, info, self.dev, engine="fast", **kw)
            rec["tf32_on_fast_vs_naive_tf32_off"] = maxdiff(fast32["scores"], naive["scores"])
        except SteerscaleError as e:  # the fast engine's run-time check (float32 tolerance) refusing TF32's noise
            rec["tf32_on_fast"] = f"stopped by the run-time check: {e}"
        finally:
            if cuda:
                torch.backends.cuda.matmul.allow_tf32 = False
                torch.backends.cudnn.allow_tf32 = False
        return rec

    def stage_device_map(self):
        from accelerate import dispatch_model

        model, tok, items, vecs, info = self._model("7b")
        L = info.n_layers
        other = "cpu"
        dmap = {"model.embed_tokens": str(self.dev), "model.norm": str(self.dev), "lm_head": str(self.dev),
                "model.rotary_emb": str(self.dev)}
        dmap.update({f"model.layers.{i}": (other if i == L - 1 else str(self.dev)) for i in range(L)})
        model = dispatch_model(model, device_map=dmap)
        layers = sorted({0, L // 2, L - 2, L - 1})
        kw = dict(batch_size=8, multipliers=[-1.0, 0.0, 1.0], layers=layers)
        naive = timed_sweep(model, tok, vecs, items[:8], info, self.dev, engine="naive", **kw)
        fast = timed_sweep(model, tok, vecs, items[:8], info, self.dev, engine="fast", **kw)
        return {"device_map": f"layers 0..{L - 2} on {self.dev}, layer {L - 1} on {other}", "layers": layers,
                "naive_s": naive["seconds"], "fast_s": fast["seconds"],
                "max_abs_diff_fast_vs_naive": maxdiff(fast["scores"], naive["scores"])}

    def stage_sweep_13b(self):
        model, tok, items, vecs, info = self._model("13b")
        tokens = 16 if self.args.dry_run else 128
        r = timed_sweep(model, tok, vecs, items, info, self.dev, engine="fast", batch_size=32,
                        multipliers=[-1.0, 0.0, 1.0])
        s = timed_sweep(model, tok, vecs, items, info, self.dev, engine="fast", batch_size=32,
                        multipliers=[-1.0, 0.0, 1.0], screen="grad", confirm_top=5, spot_check=3)
        return {"forward_b32": forward_tps(model, self.dev, 32, tokens), "fast_all_b32_s": r["seconds"],
                "fast_engine": r["engine"], "screened_s": s["seconds"], "screen": s["screen"],
                "peaks_full": peaks(r["rows"]), "peaks_screened": peaks(s["rows"])}

    def stage_layers_70b(self):
        n = 4 if self.args.dry_run else 20
        model, tok, items, vecs, info = self._model("70b", n_layers=n)
        tokens = 16 if self.args.dry_run else 128
        f = forward_tps(model, self.dev, 8, tokens)
        r = timed_sweep(model, tok, vecs, items, info, self.dev, engine="fast", batch_size=8,
                        multipliers=[-1.0, 0.0, 1.0])
        return {"layers_built": n, "of": 80, "forward_b8": f, "forward_s_per_layer": f["seconds"] / n,
                "fast_sweep_s": r["seconds"], "fast_sweep_s_per_layer": r["seconds"] / n, "fast_engine": r["engine"],
                "note": "per-layer times of 20 of the 80 layers; a whole 70B sweep is not measured here"}

    def stage_full_70b(self):
        need_gb = 80 * 0.86 * 2 + 1.0  # bf16 weights of the 80 decoder layers plus embeddings/head
        if self.args.dry_run:
            model, *_ = self._model("70b")
            return {"ran": "tiny shape", "forward": forward_tps(model, self.dev, 2, 8)}
        free = torch.cuda.mem_get_info(self.dev)[0] / 2 ** 30 if self.dev.type == "cuda" else 0.0
        if free < need_gb + 8:
            return {"skipped": f"{free:.0f} GiB free; the 70B shape needs ~{need_gb:.0f} GiB of bf16 weights plus "
                               f"activations"}
        model, *_ = self._model("70b")
        return {"forward_b8": forward_tps(model, self.dev, 8, 128)}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dry-run", action="store_true", help="every stage at a tiny shape on the CPU (a test runs it)")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--budget-s", type=float, default=480.0, help="time budget for all stages (default 480 s)")
    ap.add_argument("--items", type=int, default=32, help="A/B items per sweep (default 32)")
    ap.add_argument("--vector-scale", type=float, default=0.25, help="vector norm / mean residual norm (default 0.25)")
    ap.add_argument("--stages", default=",".join(STAGES), help="comma list, in the order to run")
    ap.add_argument("--out", default="results/bench/bench_gpu.json")
    args = ap.parse_args(argv)
    stages = [s for s in args.stages.split(",") if s]
    bad = [s for s in stages if s not in ESTIMATE_S]
    if bad:
        ap.error(f"--stages: unknown {', '.join(bad)}; expected some of {', '.join(STAGES)}")
    if not args.dry_run and not torch.cuda.is_available():
        ap.error("no CUDA device: run with --dry-run for the tiny CPU run")
    out = Bench(args).run(stages)
    print(f"wrote {args.out}")
    failed = [k for k, v in out["stages"].items() if "error" in v]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
