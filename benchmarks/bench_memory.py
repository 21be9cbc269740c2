"""Peak memory of activation collection for a Llama-2-70B-shaped run, without the 70B model.

A stand-in model with 80 decoder layers and hidden size 8192 (each layer adds a
constant; the real forward pass is irrelevant to what is kept in memory) runs
through `collect_activations` on 400 contrastive pairs. All activations at the
answer token would take 400 x 2 x 80 x 8192 x 4 B = 2.1 GB; streaming keeps the
peak to a few batches.

    PYTHONPATH=src python benchmarks/bench_memory.py                  # means only (default)
    PYTHONPATH=src python benchmarks/bench_memory.py --keep /tmp/acts # also stream per-item activations to disk

Peak RSS is the process high-water mark (VmHWM) minus the RSS just before collection.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from types import SimpleNamespace

import torch


def rss_mb() -> tuple[float, float]:
    """(current RSS, peak RSS) in MB."""
    cur = peak = None
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    cur = int(line.split()[1]) / 1024
                elif line.startswith("VmHWM:"):
                    peak = int(line.split()[1]) / 1024
    except OSError:
        pass
    if peak is None:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return (cur if cur is not None else peak), peak


class _Add(torch.nn.Module):
    def __init__(self, c: float):
        super().__init__()
        self.c = c

    def forward(self, h):
        return h + self.c


class FakeDecoder(torch.nn.Module):
    """`model.layers` holds n decoder layers; output is [batch, seq, hidden] after each."""

    def __init__(self, n_layers: int, hidden: int):
        super().__init__()
        self.config = SimpleNamespace(model_type="bench_fake_decoder", hidden_size=hidden)
        self.config.get_text_config = lambda: self.config
        self.layers = torch.nn.ModuleList([_Add(0.01 * (i + 1)) for i in range(n_layers)])
        self.anchor = torch.nn.Parameter(torch.zeros(1), requires_grad=False)
        self.hidden = hidden

    def forward(self, input_ids, attention_mask=None, position_ids=None, use_cache=False):
        b, t = input_ids.shape
        h = (input_ids.float() / 100).unsqueeze(-1).expand(b, t, self.hidden).contiguous()
        for layer in self.layers:
            h = layer(h)
        return SimpleNamespace(logits=None)


def main(argv=None) -> dict:
    from steerscale.core.activations import collect_activations
    from steerscale.core.data import ABItem
    from steerscale.core.prompts import Encoded
    from steerscale.core.models import register_architecture

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pairs", type=int, default=400)
    ap.add_argument("--layers", type=int, default=80)
    ap.add_argument("--hidden", type=int, default=8192)
    ap.add_argument("--batch-size", type=int, default=8, help="sequences per forward pass (pairs = half)")
    ap.add_argument("--keep", default=None, help="stream per-item activations to this folder")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)

    register_architecture("bench_fake_decoder", "layers")
    model = FakeDecoder(args.layers, args.hidden)
    tok = SimpleNamespace(pad_token_id=0, eos_token_id=0)
    item = ABItem("q", "A", "B", ("A", "B"))
    encoded = [Encoded([1, 2, 3, 4, 5, 6 + i % 7], {"A": 30, "B": 31}, 5, item) for i in range(args.pairs)]
    all_in_ram_mb = args.pairs * 2 * args.layers * args.hidden * 4 / 2**20
    before, _ = rss_mb()
    t = time.time()
    stats = collect_activations(model, tok, encoded, args.batch_size, keep=args.keep is not None,
                                progress=False, keep_dir=args.keep)
    elapsed = time.time() - t
    _, peak = rss_mb()
    out = {
        "shape": {"pairs": args.pairs, "layers": args.layers, "hidden": args.hidden, "batch_size": args.batch_size},
        "keep": args.keep is not None,
        "all_in_ram_mb": round(all_in_ram_mb, 1),
        "rss_before_mb": round(before, 1),
        "peak_rss_mb": round(peak, 1),
        "peak_increase_mb": round(peak - before, 1),
        "seconds": round(elapsed, 2),
        "n_shards": len(stats.shards()),
        "mean_diff_shape": list(stats.mean_diff.shape),
    }
    if args.json:
        print(json.dumps(out))
    else:
        print(f"{args.pairs} pairs x {args.layers} layers x hidden {args.hidden}, batch {args.batch_size}, "
              f"keep={'on disk' if out['keep'] else 'no'}: all activations in RAM would be {all_in_ram_mb:,.0f} MB; "
              f"peak RSS rose by {out['peak_increase_mb']:,.0f} MB (from {before:,.0f} to {peak:,.0f} MB) "
              f"in {elapsed:.1f} s")
    return out


if __name__ == "__main__":
    main(sys.argv[1:])
