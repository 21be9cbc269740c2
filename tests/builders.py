"""Shared builders for tests in every stage folder: items, planted models, tiny reproduce configs.

Test modules import helpers from here (or from conftest, tinydir, synth, realtok), never from another test module.
"""

from __future__ import annotations

import json

import torch

from conftest import TinyTokenizer, make_model
from steerscale.core.data import parse_item

FIELDS = ("score", "logit_diff", "letter_mass")


def varied_items(n):
    """Items of different lengths (so batches carry padding) and both answer orders."""
    out = []
    for i in range(n):
        q = f"q{i} " + "why " * (i % 4) + "ok?"
        out.append(parse_item({"question": f"{q}\n\nChoices:\n(A) yes\n(B) no",
                               "answer_matching_behavior": "(B)" if i % 2 else "(A)",
                               "answer_not_matching_behavior": "(A)" if i % 2 else "(B)"}, idx=i))
    return out


def make_items(n):
    return [parse_item({"question": f"question {i} please?\n\nChoices:\n(A) yes\n(B) no",
                        "answer_matching_behavior": "(B)" if i % 2 else "(A)",
                        "answer_not_matching_behavior": "(A)" if i % 2 else "(B)", "category": "c"}, idx=i)
            for i in range(n)]


def blocks_add_nothing(model):
    """Zero every block's output projections (attention o_proj, MLP down_proj) of a tiny Llama: each block then
    adds nothing, and the residual at any layer is the token embedding. Returns the model."""
    with torch.no_grad():
        for layer in model.model.layers:
            layer.self_attn.o_proj.weight.zero_()
            layer.mlp.down_proj.weight.zero_()
    return model


def identity_llama(direction: torch.Tensor):
    """A Llama whose blocks add nothing (zeroed output projections): the residual is the token embedding.

    The embeddings of the letters A and B differ by exactly `direction`, so the mean difference at
    every layer is known in closed form.
    """
    model, tok = blocks_add_nothing(make_model("llama")), TinyTokenizer()
    with torch.no_grad():
        E = model.model.embed_tokens.weight
        a, b = tok("A").input_ids[0], tok("B").input_ids[0]
        E[a] = E[b] + direction
        model.lm_head.weight.copy_(E)  # unembedding = embedding, so the letter logits read the direction
    return model, tok


def letter_items(n, frac_a):
    out = []
    for i in range(n):
        m, nm = ("(A)", "(B)") if i < round(n * frac_a) else ("(B)", "(A)")
        out.append(parse_item({"question": f"request number {i}?\n\nChoices:\n(A) no\n(B) yes",
                               "answer_matching_behavior": m, "answer_not_matching_behavior": nm}, idx=i))
    return out


def write_items(path, n, offset=0):
    items = []
    for i in range(n):
        refuse_a = (i + offset) % 2 == 0
        a, b = ("No, I won't.", "Sure, here.") if refuse_a else ("Sure, here.", "No, I won't.")
        items.append({"question": f"Request {i + offset}?\n\nChoices:\n(A) {a}\n(B) {b}",
                      "answer_matching_behavior": "(A)" if refuse_a else "(B)",
                      "answer_not_matching_behavior": "(B)" if refuse_a else "(A)", "category": "c"})
    path.write_text(json.dumps(items))


def tiny_config(tmp_path, multipliers="[-1.0, 0.0, 1.0]", extra=""):
    write_items(tmp_path / "train.json", 8)
    write_items(tmp_path / "test.json", 8, offset=100)
    cfg = tmp_path / "cfg.toml"
    cfg.write_text(f"""
[run]
n_bootstrap = 50
[data]
train = "train.json"
test = "test.json"
[sweep]
template = "plain"
layer_stride = 2
multipliers = {multipliers}
[[models]]
spec = "tiny-a"
name = "tiny a"
[[models]]
spec = "tiny-b"
{extra}""")
    return cfg


OPENENDED = """[openended]
layer_stride = 2
multipliers = [-4.0, 0.0, 4.0]
n_logodds = 3
n_generate = 1
max_new_tokens = {max_new_tokens}
n_neutral = 2
ce_bound = 0.5
"""
