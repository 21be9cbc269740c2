"""--batch-size auto on a real GPU (needs CUDA and transformers): a real out-of-memory error is recognised and the
size halved, and memory is given back between tries.

1. A probe that allocates 2 GiB per row: the chosen size is the largest power-of-two fraction of 256 that fits.
2. auto_batch_size on a random 2-layer, 4096-wide Llama in bfloat16 at 512 tokens per row (the default probe) and
   at 8192 tokens starting from 4096 rows (forward passes that run out of memory).
3. The memory still allocated afterwards (the model alone when nothing leaked).
"""

import time

import torch
from transformers import LlamaConfig, LlamaForCausalLM

from steerscale.core.autobatch import auto_batch_size, choose_batch_size

tried = []


def probe(b: int) -> None:
    tried.append(b)
    x = torch.empty(b * 2**29, device="cuda")  # 2 GiB of float32 per row
    del x


print("2 GiB per row:", choose_batch_size(probe, on_oom=torch.cuda.empty_cache), "tried", tried)
cfg = LlamaConfig(hidden_size=4096, intermediate_size=14336, num_hidden_layers=2, num_attention_heads=32,
                  num_key_value_heads=8, vocab_size=32000, max_position_embeddings=8192)
model = LlamaForCausalLM(cfg).to("cuda", torch.bfloat16).eval()
t = time.time()
print("512 tokens:", auto_batch_size(model), f"{time.time() - t:.1f} s")
t = time.time()
print("8192 tokens from 4096 rows:", auto_batch_size(model, start=4096, tokens=8192), f"{time.time() - t:.1f} s")
print("allocated after (MiB):", torch.cuda.memory_allocated() >> 20)
