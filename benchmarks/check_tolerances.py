"""How far the fast engine's scores are from the naive engine's on one batch, per dtype and mode.

The numbers behind ``engines.check.CHECK_TOL`` (docs/cost_model.md, "The one-point check"): SmolLM2-135M-Instruct,
vectors from 16 refusal-train items, the first 8 refusal-test items as one batch (chat template),
layers 3/12/25, multipliers -1/+1, float32/bfloat16/float16, all positions and instruction end.
Run: ``PYTHONPATH=src python benchmarks/check_tolerances.py`` (about 15 minutes on one CPU thread).
"""

import time

import numpy as np
import torch

from steerscale import load_dataset, load_model, train_vectors
from steerscale.core.prompts import encode_items
from steerscale.engines.naive import naive_scores as naive_engine
from steerscale.engines.fast import sweep_points
from steerscale.config import SweepConfig

FIELDS = ("score", "logit_diff", "letter_mass")


def main():
    torch.set_num_threads(1)
    model, tok, info = load_model("smollm2-135m")
    vecs = train_vectors(model, tok, load_dataset("refusal-train", limit=16), progress=False)
    enc = encode_items(tok, load_dataset("refusal-test", limit=8), "chat")
    for dt in ("float32", "bfloat16", "float16"):
        model.to(getattr(torch, dt))
        for pos in ("all", "instruction_end"):
            cfg = SweepConfig(positions=pos, batch_size=8).validate(info.n_layers)
            worst = dict.fromkeys(FIELDS, 0.0)
            t = time.time()
            for layer in (3, 12, 25):
                for m in (-1.0, 1.0):
                    res, _ = sweep_points(model, tok, vecs, enc, [layer], [m], pos, 8, sort_by_length=True)
                    ref = naive_engine(model, tok, vecs, enc, layer, [m], cfg)[m]
                    for f in FIELDS:
                        d = float(np.max(np.abs(getattr(res[(layer, m)], f) - getattr(ref, f))))
                        worst[f] = max(worst[f], d)
            print(f"{dt:9s} {pos:16s} max |fast - naive|: " + ", ".join(f"{f} {v:.2e}" for f, v in worst.items())
                  + f"  ({time.time() - t:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
