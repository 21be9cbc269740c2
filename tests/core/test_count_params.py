"""n_params is the unique parameter count: tied embeddings once, a copied (untied) head once, a real head counted."""

import torch

from conftest import make_model
from steerscale.core.models import count_params


def _all(model):
    return sum(p.numel() for p in model.parameters())


def _head(model):
    return model.get_output_embeddings().weight.numel()


def test_tied_embeddings_count_once():
    m = make_model("llama", tie_word_embeddings=True)
    m.tie_weights()
    assert m.get_output_embeddings().weight is m.get_input_embeddings().weight
    assert count_params(m) == _all(m)  # parameters() already yields the shared tensor once
    total = sum(p.numel() for _, p in m.named_parameters(remove_duplicate=False))
    assert count_params(m) == total - _head(m)


def test_untied_head_counts_twice_when_it_is_its_own_tensor():
    m = make_model("llama", tie_word_embeddings=False)
    assert m.get_output_embeddings().weight is not m.get_input_embeddings().weight
    assert count_params(m) == _all(m)


def test_head_copied_from_the_embedding_counts_once():
    # what a GGUF conversion that writes the embedding out again as output.weight loads as: two tensors, one matrix
    m = make_model("llama", tie_word_embeddings=False)
    emb, head = m.get_input_embeddings().weight, m.get_output_embeddings().weight
    with torch.no_grad():
        head.copy_(emb)
    assert count_params(m) == _all(m) - _head(m)
    # a differently quantised copy: equal up to ~10% relative noise
    with torch.no_grad():
        head.copy_(emb + 0.1 * emb.std() * torch.randn_like(emb))
    assert count_params(m) == _all(m) - _head(m)


def test_config_says_tied_but_loader_made_two_tensors():
    m = make_model("llama", tie_word_embeddings=False)
    m.config.tie_word_embeddings = True  # e.g. a loader that untied a tied checkpoint
    assert count_params(m) == _all(m) - _head(m)


def test_every_tiny_architecture(arch):
    m = make_model(arch)
    untied_total = sum(p.numel() for _, p in m.named_parameters(remove_duplicate=False))
    n = count_params(m)
    assert n <= untied_total and n in (untied_total, untied_total - _head(m))
