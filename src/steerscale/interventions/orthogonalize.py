"""Weight orthogonalisation: bake directional ablation into the weights, and save the edited model.

For an orthonormal basis Q ([k, hidden]) of the directions, every weight that writes into the residual
stream is replaced by its projection onto the complement of Q, so the edited model (no hooks) computes
what the original model computes under ``steering.ablate(model, directions)`` (all layers, embedding
included):

* token embedding E [vocab, hidden] (and GPT-2's position embedding): ``E - (E Q^T) Q``. Scaled
  embeddings (Gemma multiplies by sqrt(hidden)) commute with the projection.
* attention output and MLP down projections (nn.Linear, W [hidden, in]): ``W - Q^T (Q W)``; GPT-2's
  Conv1D (W [in, hidden]): ``W - (W Q^T) Q``; their biases b: ``b - Q^T (Q b)``.
* tied input/output embeddings are untied first: the output head keeps the original matrix, because
  under ablation the head still reads the *normed* residual, whose component along Q the norm's
  elementwise weight can bring back.

Architectures whose blocks normalise a sublayer's output *before* adding it to the residual (Gemma 2/3,
OLMo 2) cannot be orthogonalised exactly (a norm's elementwise weight and its division by the RMS are not
a projection), and mixture-of-experts blocks are not handled: both are refused. `orthogonalize`
checks itself at run time: logits of the edited model on a probe input must equal the hooked ablation's.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from ..errors import SteerscaleError
from ..core.models import get_layers
from ..core.steering import ablate, orthonormal_basis

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

# model_type -> (paths of embedding modules from the model root, paths of residual-writing linears in a layer)
WRITER_WEIGHTS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    **{t: ((), ("self_attn.o_proj", "mlp.down_proj")) for t in ("llama", "mistral", "qwen2", "qwen3", "gemma",
                                                                "phi3", "olmo")},
    "gpt2": (("transformer.wpe",), ("attn.c_proj", "mlp.c_proj")),
    "gpt_neox": ((), ("attention.dense", "mlp.dense_4h_to_h")),
}
REFUSED = {
    "gemma2": "its blocks add RMS-normed sublayer outputs to the residual (post-attention/feed-forward norms)",
    "gemma3_text": "its blocks add RMS-normed sublayer outputs to the residual (post-attention/feed-forward norms)",
    "gemma3": "its blocks add RMS-normed sublayer outputs to the residual (post-attention/feed-forward norms)",
    "olmo2": "its blocks add RMS-normed sublayer outputs to the residual (post-attention/feed-forward norms)",
    "mixtral": "its mixture-of-experts blocks are not handled",
}


def _get(root, path: str):
    obj = root
    for part in path.split("."):
        obj = getattr(obj, part)
    return obj


def _check_arch(model: PreTrainedModel) -> str:
    mtype = getattr(model.config, "model_type", type(model).__name__)
    if mtype in REFUSED:
        raise SteerscaleError(f"orthogonalize: architecture {mtype!r} cannot be orthogonalised exactly: "
                              f"{REFUSED[mtype]}; use hooked ablation (steerscale.ablate) instead")
    if mtype not in WRITER_WEIGHTS:
        raise SteerscaleError(f"orthogonalize: architecture {mtype!r} is not supported (supported: "
                              f"{', '.join(sorted(WRITER_WEIGHTS))})")
    return mtype


def _untie(model: PreTrainedModel) -> bool:
    """Give the output head its own copy of a tied embedding matrix; True if it was tied."""
    inp, out = model.get_input_embeddings(), model.get_output_embeddings()
    if out is None or out.weight is not inp.weight and out.weight.data_ptr() != inp.weight.data_ptr():
        return False
    out.weight = torch.nn.Parameter(inp.weight.detach().clone(), requires_grad=False)
    for cfg in {id(c): c for c in (model.config, model.config.get_text_config())}.values():
        cfg.tie_word_embeddings = False
    return True


@torch.no_grad()
def _project_rows(w: torch.Tensor, q: torch.Tensor) -> None:
    """In place: w[..., hidden] rows lose their component along q (w - (w q^T) q)."""
    w64 = w.double()
    w.copy_((w64 - (w64 @ q.T) @ q).to(w.dtype))


@torch.no_grad()
def _project_out_dim(w: torch.Tensor, q: torch.Tensor) -> None:
    """In place: columns of w [hidden, in] lose their component along q (w - q^T (q w))."""
    w64 = w.double()
    w.copy_((w64 - q.T @ (q @ w64)).to(w.dtype))


def _probe(model: PreTrainedModel, seed: int = 0, length: int = 12) -> torch.Tensor:
    vocab = int(model.config.get_text_config().vocab_size)
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, vocab, (2, length), generator=g)
    dev = next(model.parameters()).device
    return model(input_ids=ids.to(dev), use_cache=False).logits.float().cpu()


@torch.no_grad()
def orthogonalize(model: PreTrainedModel, directions, check: bool = True, rtol: float | None = None) -> dict:
    """Edit `model` in place so that, with no hooks, it computes ``ablate(model, directions)``.

    `directions`: [hidden] or [k, hidden] (their span is removed). Unties tied embeddings (see module doc).
    With `check` (default) the logits on a seeded random probe (2 x 12 tokens) before the edit under hooked
    ablation and after the edit without hooks must agree within `rtol` x max(1, max |logit|) (default 1e-4
    in float32, 2e-2 in 16-bit dtypes); otherwise SteerscaleError (the weights are then already edited:
    reload the model). Returns a summary dict: model_type, n_directions, untied, edited parameter names,
    max_abs_diff of the check.
    """
    mtype = _check_arch(model)
    q64 = orthonormal_basis(directions)
    hidden = int(model.config.get_text_config().hidden_size)
    if q64.shape[1] != hidden:
        raise SteerscaleError(f"directions have size {q64.shape[1]}; this model's hidden size is {hidden}")
    was_training = model.training
    model.eval()
    ref = None
    if check:
        with ablate(model, q64):
            ref = _probe(model)
    untied = _untie(model)
    embeds, linears = WRITER_WEIGHTS[mtype]
    edited = []
    names = {id(p): n for n, p in model.named_parameters()}
    for mod in [model.get_input_embeddings()] + [_get(model, p) for p in embeds]:
        q = q64.to(mod.weight.device)
        _project_rows(mod.weight.data, q)
        edited.append(names.get(id(mod.weight), "embedding"))
    for layer in get_layers(model):
        for path in linears:
            mod = _get(layer, path)
            q = q64.to(mod.weight.device)
            if type(mod).__name__ == "Conv1D":  # GPT-2: y = x W + b, W [in, hidden]
                _project_rows(mod.weight.data, q)
            elif isinstance(mod, torch.nn.Linear):  # y = x W^T + b, W [hidden, in]
                _project_out_dim(mod.weight.data, q)
            else:
                raise SteerscaleError(f"orthogonalize: {path} is a {type(mod).__name__}, expected Linear or Conv1D")
            edited.append(names.get(id(mod.weight), path))
            if getattr(mod, "bias", None) is not None:
                _project_rows(mod.bias.data.view(1, -1), q)
                edited.append(names.get(id(mod.bias), path + ".bias"))
    diff = None
    if check:
        got = _probe(model)
        diff = float((got - ref).abs().max())
        dtype = next(model.parameters()).dtype
        tol = (rtol if rtol is not None else (1e-4 if dtype == torch.float32 else 2e-2)) * max(1.0, float(ref.abs().max()))
        if not diff <= tol:
            raise SteerscaleError(f"orthogonalize: self-check failed for {mtype!r}: edited model's logits differ "
                                  f"from hooked ablation by {diff:.3g} (tolerance {tol:.3g}); the model's weights "
                                  f"are already edited, reload it")
    model.train(was_training)
    return {"model_type": mtype, "n_directions": int(q64.shape[0]), "untied_embeddings": untied,
            "edited_parameters": edited, "check_max_abs_diff": diff}


def save_orthogonalized(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, directions, out_dir,
                        meta: dict | None = None, check: bool = True, force: bool = False, sources=()) -> Path:
    """Orthogonalise `model` in place and write it, with its tokenizer, as a safetensors model folder.

    The folder holds config.json, model.safetensors (no pickle), the tokenizer files, and
    ``steerscale_orthogonalize.json`` (the summary of `orthogonalize` plus `meta`) and
    ``ablated_directions.safetensors`` (the orthonormal basis removed). Load it with ``load_model(out_dir)``.
    The folder is built under a temporary name and put in place whole (``outputs.build_folder``): a non-empty
    `out_dir` is replaced only with `force`, never when it is (inside) one of `sources`, and a kill or a
    full disk at any moment leaves the old folder intact or the new one complete with its record.
    """
    from ..io.outputs import build_folder, check_out_folder_target, fault_point
    from ..io.store import atomic_write_text
    from ..io.tensorio import save_with_meta

    check_out_folder_target(out_dir, force, sources)  # refused before any weight is edited
    summary = orthogonalize(model, directions, check=check)
    basis = orthonormal_basis(directions).float()

    def build(tmp: Path) -> None:
        model.save_pretrained(tmp, safe_serialization=True)
        if not any(tmp.glob("*.safetensors")) or any(tmp.glob("*.bin")):
            raise SteerscaleError(f"{out_dir}: save_pretrained did not write safetensors only")
        fault_point("orthogonalize-weights")
        if tokenizer is not None and hasattr(tokenizer, "save_pretrained"):
            tokenizer.save_pretrained(tmp)
        fault_point("orthogonalize-tokenizer")
        save_with_meta(tmp / "ablated_directions.safetensors", {"directions": basis.contiguous()},
                       {"kind": "orthonormal basis removed by orthogonalize"})
        fault_point("orthogonalize-directions")
        atomic_write_text(tmp / "steerscale_orthogonalize.json", json.dumps(dict(summary, **(meta or {})), indent=2))

    return build_folder(out_dir, build, force=force, sources=sources)
