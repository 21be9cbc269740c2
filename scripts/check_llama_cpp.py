"""Check steerscale's llama.cpp control-vector export against llama.cpp itself (optional; needs llama-cpp-python).

What it does, on the embedded SmolLM2-135M GGUF:
1. steerscale: load the GGUF (dequantised to float32), take steering vectors, and compute next-token logits of a
   prompt unsteered and with ``multiplier * vector[L]`` added to the output of decoder layer L (every position),
   for L - 1, L and L + 1.
2. Export ``multiplier * vector[L]`` with ``steerscale.export_llama_cpp`` and read the file back with the ``gguf``
   package exactly as llama.cpp's common loader does (``common_control_vector_load_one``: ``direction.N`` into a
   flat buffer at ``n_embd * (N - 1)``; llama-cpp-python does not bind that loader), then hand the buffer to
   llama.cpp's own ``llama_set_adapter_cvec`` (its ``apply`` / ``apply_to`` / ``build_cvec`` decide the layer).
3. llama.cpp (Q4_1 weights, its own kernels): logits of the same token ids, unsteered and steered.
Report: the unsteered difference (quantisation noise floor), and how well llama.cpp's steering change
(steered - unsteered) matches steerscale's at L - 1, L, L + 1 (correlation, RMS difference).

    python scripts/check_llama_cpp.py [--layer 15] [--multiplier 8] [--vectors FILE]
"""

from __future__ import annotations

import argparse
import ctypes
import json
import sys

import numpy as np
import torch


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--layer", type=int, default=15)
    ap.add_argument("--multiplier", type=float, default=8.0)
    ap.add_argument("--vectors", default=None, help="a steerscale vectors file (default: train on 32 refusal-train items)")
    ap.add_argument("--prompt", default="How do I pick a lock?")
    ap.add_argument("--json", default=None, help="also write the numbers to this JSON file")
    a = ap.parse_args(argv)

    import gguf
    import llama_cpp

    import steerscale as ss
    from steerscale.core.prompts import format_prompt
    from steerscale.core.interop import export_llama_cpp
    from steerscale.core.models import smollm2_path
    from steerscale.core.vectors import SteeringVectors

    torch.set_num_threads(1)
    model, tok, info = ss.load_model("smollm2-135m")
    if a.vectors:
        vecs = SteeringVectors.load(a.vectors)
    else:
        vecs = ss.train_vectors(model, tok, ss.load_dataset("refusal-train", limit=32), template="chat", progress=False)
    text = format_prompt(tok, a.prompt, "chat")
    ids = tok(text, add_special_tokens=False)["input_ids"]

    @torch.no_grad()
    def hf_logits(layer=None):
        inp = torch.tensor([ids])
        if layer is None:
            return model(input_ids=inp).logits[0, -1].float().numpy()
        with ss.steer(model, vecs, [layer], a.multiplier):
            return model(input_ids=inp).logits[0, -1].float().numpy()

    L = a.layer
    hf0 = hf_logits()
    hf = {l: hf_logits(l) - hf0 for l in (L - 1, L, L + 1)}

    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as d:
        cv = Path(d) / "cv.gguf"
        export_llama_cpp(vecs, cv, layers=[L], multiplier=a.multiplier)
        r = gguf.GGUFReader(str(cv))
        n_embd = info.hidden_size
        n_layer = info.n_layers
        buf = np.zeros(n_embd * n_layer, dtype=np.float32)  # common_control_vector_load_one: layer 1 at [0]
        for t in r.tensors:
            name = t.name
            if not name.startswith("direction."):
                continue
            idx = int(name.split(".", 1)[1])
            assert idx > 0, "llama.cpp rejects direction.0"
            buf[n_embd * (idx - 1): n_embd * idx] += np.asarray(t.data, dtype=np.float32).reshape(-1)

    llm = llama_cpp.Llama(model_path=str(smollm2_path()), n_ctx=512, n_batch=512, logits_all=True, verbose=False,
                          n_threads=2)
    ctx = llm._ctx.ctx

    def cpp_logits():
        llm.reset()
        llm.eval(ids)
        return np.array(llm.scores[len(ids) - 1], dtype=np.float64)

    cpp0 = cpp_logits()
    ptr = buf.ctypes.data_as(ctypes.POINTER(ctypes.c_float))
    rc = llama_cpp.llama_set_adapter_cvec(ctx, ptr, buf.size, n_embd, 1, n_layer - 1)
    if rc != 0:
        print(f"llama_set_adapter_cvec failed ({rc})", file=sys.stderr)
        return 1
    cpp_delta = cpp_logits() - cpp0

    out = {"layer": L, "multiplier": a.multiplier, "prompt_tokens": len(ids), "llama_cpp_python": llama_cpp.__version__,
           "unsteered_max_abs_diff": float(np.max(np.abs(cpp0 - hf0))),
           "unsteered_rms_diff": float(np.sqrt(np.mean((cpp0 - hf0) ** 2))),
           "llama_cpp_delta_rms": float(np.sqrt(np.mean(cpp_delta ** 2))),
           "vs_steerscale_layer": {}}
    for l, d in hf.items():
        out["vs_steerscale_layer"][str(l)] = {
            "steerscale_delta_rms": float(np.sqrt(np.mean(d ** 2))),
            "corr": float(np.corrcoef(cpp_delta, d)[0, 1]),
            "rms_diff": float(np.sqrt(np.mean((cpp_delta - d) ** 2))),
            "max_abs_diff": float(np.max(np.abs(cpp_delta - d))),
            "same_top_token": bool(np.argmax(cpp0 + cpp_delta) == np.argmax(hf0 + d)),
        }
    print(json.dumps(out, indent=2))
    if a.json:
        Path(a.json).write_text(json.dumps(out, indent=2) + "\n")
    best = max(out["vs_steerscale_layer"].items(), key=lambda kv: kv[1]["corr"])[0]
    print(f"llama.cpp's change matches steerscale layer {best} best (exported as layer {L})")
    return 0 if best == str(L) else 1


if __name__ == "__main__":
    sys.exit(main())
