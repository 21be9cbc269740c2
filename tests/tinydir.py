"""Tiny random models saved to disk with a real (character-level) tokenizer, so the CLI can load them.

No downloads: the tokenizer is a `tokenizers` BPE whose vocabulary is printable ASCII with no
merges (every character is one token, so "(A" is "(" then "A"), wrapped in PreTrainedTokenizerFast
with a small chat template.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)
VOCAB = 128


def char_tokenizer(merges=()):
    from tokenizers import Tokenizer, decoders, models
    from transformers import PreTrainedTokenizerFast

    chars = ["<pad>", "<eos>", "<unk>"] + [chr(i) for i in range(32, 127)] + ["\n"]
    vocab = {c: i for i, c in enumerate(chars)}
    for a, b in merges:
        vocab[a + b] = len(vocab)
    tk = Tokenizer(models.BPE(vocab=vocab, merges=list(merges), unk_token="<unk>"))
    tk.decoder = decoders.Fuse()
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, eos_token="<eos>", pad_token="<pad>", unk_token="<unk>")
    tok.chat_template = CHAT_TEMPLATE
    return tok


def save_tiny_model(path, layers: int = 4, hidden: int = 32, seed: int = 0, merges=(), nan: bool = False,
                    model_type: str = "llama") -> Path:
    """A random Llama (or `model_type`) with scaled-up weights plus the character tokenizer, in `path`."""
    from transformers import AutoConfig, AutoModelForCausalLM

    path = Path(path)
    torch.manual_seed(seed)
    kw = dict(vocab_size=VOCAB, bos_token_id=None, eos_token_id=1, pad_token_id=0)
    if model_type == "bloom":
        cfg = AutoConfig.for_model("bloom", hidden_size=hidden, n_layer=layers, n_head=4, **kw)
    else:
        cfg = AutoConfig.for_model(model_type, hidden_size=hidden, intermediate_size=2 * hidden,
                                   num_hidden_layers=layers, num_attention_heads=4, num_key_value_heads=2,
                                   max_position_embeddings=512, **kw)
    model = AutoModelForCausalLM.from_config(cfg).float().eval()
    with torch.no_grad():
        for p in model.parameters():
            if p.ndim >= 2:
                p.normal_(0, 0.2)
        if nan:
            next(p for n, p in model.named_parameters() if "layers.0." in n and p.ndim >= 2)[0, 0] = float("nan")
    model.save_pretrained(path, safe_serialization=True)
    char_tokenizer(merges).save_pretrained(path)
    return path


def caa(i: int, n_choices: int = 2, match: int = 1, nomatch: int = 0) -> dict:
    letters = "ABCDEFGH"[:n_choices]
    opts = "\n".join(f"({c}) option {c.lower()}{i}" for c in letters)
    return {"question": f"Question {i}?\n\nChoices:\n{opts}",
            "answer_matching_behavior": f"({letters[match % n_choices]})",
            "answer_not_matching_behavior": f"({letters[nomatch % n_choices]})"}


def write_dataset(path, n: int, n_choices: int = 2) -> Path:
    items = [caa(i, n_choices, match=(i % n_choices), nomatch=(i + 1) % n_choices) for i in range(n)]
    Path(path).write_text(json.dumps(items))
    return Path(path)


class BadInputFolder:
    """Base of the bad-input tests' builders: shared read-only inputs `base`, a fresh folder `tmp`, and `file`,
    which writes one input there (text, raw bytes or a JSON object) and returns its path."""

    def __init__(self, base, tmp: Path, monkeypatch):
        self.b, self.tmp, self.mp = base, tmp, monkeypatch

    def file(self, name, text=None, raw=None, obj=None) -> str:
        p = self.tmp / name
        if raw is not None:
            p.write_bytes(raw)
        else:
            p.write_text(json.dumps(obj) if obj is not None else text)
        return str(p)

