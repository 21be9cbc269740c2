"""The core nouns as types: what a tokenizer must offer, and how steering tells kinds of vectors apart.

A leaf module (no runtime steerscale imports): ``core/steering.py`` sits below ``core/vectors.py``
(vectors -> activations -> steering), so the class steering checks for is declared here and
``SteeringVectors`` derives from it.

- model: ``transformers.PreTrainedModel`` (annotations only; accelerate-dispatched and GGUF-loaded
  models are PreTrainedModels too).
- tokenizer: ``Tokenizer`` below, the part of ``transformers.PreTrainedTokenizerBase`` the package uses
  (the tests' ``TinyTokenizer`` has exactly this part; ``apply_chat_template`` is called only when
  ``chat_template`` is set).
- vectors: ``core.vectors.SteeringVectors``; where raw per-layer vectors are accepted too (``steer``,
  the engines), ``LayerVectors``.
- config: the specific config dataclass (``config.SweepConfig``, ``config.OpenEndedConfig``, ...).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol, Union

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel

    from .vectors import SteeringVectors

    # What steer(), the engines and window_vectors accept: SteeringVectors (checked against the model), a
    # [n_layers, hidden] tensor or a dict layer -> [hidden] tensor (used as given).
    LayerVectors = Union[SteeringVectors, torch.Tensor, dict[int, torch.Tensor]]


class Tokenizer(Protocol):
    """The tokenizer interface steerscale uses (a subset of ``transformers.PreTrainedTokenizerBase``)."""

    chat_template: str | None
    bos_token: str | None
    eos_token: str | None
    pad_token: str | None
    pad_token_id: int | None
    eos_token_id: int | None
    padding_side: str

    def __call__(self, text: str, add_special_tokens: bool = True) -> Any: ...  # .input_ids: list[int]

    def convert_ids_to_tokens(self, ids: list[int]) -> list[str]: ...

    def batch_decode(self, seqs, skip_special_tokens: bool = True) -> list[str]: ...


class FittedVectors:
    """Per-layer vectors that know the model shape they were made for (``SteeringVectors`` is the one kind).

    ``core.steering.check_vectors`` checks these against the model; raw tensors and dicts are used as given.
    A plain base class (no ABCMeta: ``SteeringVectors`` stays an ordinary class); subclasses define all three.
    """

    __slots__ = ()

    vectors: torch.Tensor  # [n_layers, hidden]
    meta: dict  # what produced them

    def check_model(self, model: PreTrainedModel) -> None:
        """Raise SteerscaleError if `model`'s layer count or hidden size differs from the vectors'."""
        raise NotImplementedError

    def __len__(self) -> int:
        raise NotImplementedError

    def __getitem__(self, layer: int) -> torch.Tensor:
        raise NotImplementedError
