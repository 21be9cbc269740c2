"""The core nouns' types tell the truth: one rule tells kinds of vectors apart, and the Tokenizer protocol is what
both the tests' TinyTokenizer and transformers' tokenizers offer."""

import pytest
import torch
from transformers import PreTrainedTokenizerBase

from steerscale.core.steering import steer, steer_grad
from steerscale.core.types import FittedVectors, Tokenizer
from steerscale.core.vectors import SteeringVectors, as_vectors
from steerscale.errors import SteerscaleError
from conftest import TinyTokenizer, make_model


def _protocol_members(proto) -> set[str]:
    names = set(getattr(proto, "__annotations__", {}))
    names |= {n for n, v in vars(proto).items() if callable(v) and not n.startswith("_")}
    return names | {"__call__"}


@pytest.mark.parametrize("tok_cls", [TinyTokenizer, PreTrainedTokenizerBase])
def test_tokenizer_protocol_is_offered_by_the_tokenizers_used(tok_cls):
    members = _protocol_members(Tokenizer)
    assert {"pad_token_id", "convert_ids_to_tokens", "batch_decode", "chat_template"} <= members
    if tok_cls is PreTrainedTokenizerBase:  # attributes are set per instance: check the class's own API
        members = {m for m in members if callable(getattr(Tokenizer, m, None))}
    missing = [m for m in members if not hasattr(tok_cls, m)]
    assert not missing, f"{tok_cls.__name__} lacks {missing}"


def test_steering_vectors_are_the_fitted_kind_and_tensors_are_not():
    v = SteeringVectors(torch.zeros(4, 32))
    assert isinstance(v, FittedVectors)
    assert not isinstance(torch.zeros(4, 32), FittedVectors) and not isinstance({0: torch.zeros(32)}, FittedVectors)


def test_as_vectors_wraps_a_tensor_keeps_vectors_and_names_what_it_got():
    t = torch.randn(4, 32)
    v = as_vectors(t)
    assert isinstance(v, SteeringVectors) and v.vectors is t and v.meta == {}
    assert as_vectors(v) is v
    with pytest.raises(SteerscaleError, match=r"^steering vectors: got list; expected SteeringVectors or a "
                                              r"\[n_layers, hidden\] torch.Tensor$"):
        as_vectors([[0.0] * 32] * 4)


def test_steer_checks_steering_vectors_uses_tensors_and_dicts_and_refuses_the_rest():
    model = make_model("llama")  # 4 layers x hidden 32
    with pytest.raises(SteerscaleError, match="this model has 4 layers x hidden 32"):
        with steer(model, SteeringVectors(torch.zeros(3, 32)), [0]):
            pass
    for ok in (SteeringVectors(torch.zeros(4, 32)), torch.zeros(4, 32), {1: torch.zeros(32)}):
        with steer(model, ok, [1]):
            pass
    for bad in ([torch.zeros(32)] * 4, (torch.zeros(32),) * 4):
        with pytest.raises(SteerscaleError, match=r"^steering vectors: got (list|tuple); expected SteeringVectors"):
            with steer(model, bad, [1]):
                pass
        with pytest.raises(SteerscaleError, match=r"^steering vectors: got (list|tuple);"):
            with steer_grad(model, bad, [1]):
                pass
