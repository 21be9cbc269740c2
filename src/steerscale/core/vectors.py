"""Steering vectors: one per decoder layer, from (matching - not matching) at the answer token.

Estimator (``letter_balance``, see ``letters.py``): ``balanced`` (default; the letter-balanced mean, which
cancels the answer-letter direction whatever the training items' letter imbalance), ``swap`` (the mean over
the items and their option-swapped twins) or ``none`` (CAA's raw mean). Every trained vector records its
letter figures in ``meta["letter"]`` (``letters.LetterFigures``).

Normalisation: ``none`` (the raw mean difference, as the CAA code uses for one
behaviour), ``unit`` (each layer's vector has norm 1) or ``residual`` (scaled to
the mean residual norm at that layer, so a multiplier of 1 is "one typical
residual norm"). Saved as safetensors with JSON metadata.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from .activations import ActivationStats, cache_key, collect_activations
from .data import ABItem, dataset_hash, letter_counts, swap_item
from .prompts import answer_scheme, encode_items
from .prompts import answer_record
from ..errors import SteerscaleError
from .letters import ESTIMATORS, LetterFigures, check_balanceable, decompose, item_cells, letter_figures, warn_imbalance
from .models import get_layers, model_info, weights_fingerprint
from .types import FittedVectors
from ..io.tensorio import json_meta, read_safetensors, save_with_meta

if TYPE_CHECKING:
    from transformers import PreTrainedModel

    from .types import Tokenizer

NORMALIZATIONS = ("none", "unit", "residual")


def as_vectors(vectors: SteeringVectors | torch.Tensor) -> SteeringVectors:
    """The one coercion to SteeringVectors: SteeringVectors as given, a [n_layers, hidden] tensor wrapped (empty
    meta, the same tensor); anything else is a SteerscaleError naming the type got and the types accepted."""
    if isinstance(vectors, SteeringVectors):
        return vectors
    if isinstance(vectors, torch.Tensor):
        return SteeringVectors(vectors)
    raise SteerscaleError(f"steering vectors: got {type(vectors).__name__}; expected SteeringVectors or a "
                          f"[n_layers, hidden] torch.Tensor")


@dataclass
class SteeringVectors(FittedVectors):
    """vectors[L] is added to the output of decoder layer L. ``meta`` says what produced them."""

    vectors: torch.Tensor  # [n_layers, hidden], float32
    meta: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.vectors.ndim != 2:
            raise SteerscaleError(f"steering vectors must be [n_layers, hidden], got shape {tuple(self.vectors.shape)}")
        if not torch.isfinite(self.vectors).all():
            raise SteerscaleError("steering vectors contain NaN or Inf")

    def __len__(self) -> int:
        return self.vectors.shape[0]

    def __getitem__(self, layer: int) -> torch.Tensor:
        if -len(self) <= layer < 0:  # -1 = the last layer
            layer += len(self)
        if not 0 <= layer < len(self):
            raise IndexError(layer)
        return self.vectors[layer]

    @property
    def n_layers(self) -> int:
        return self.vectors.shape[0]

    @property
    def hidden_size(self) -> int:
        return self.vectors.shape[1]

    def norms(self) -> torch.Tensor:
        return self.vectors.norm(dim=-1)

    def check_model(self, model: PreTrainedModel) -> None:
        """Refuse to steer a model whose layer count or hidden size differs from the vectors'."""
        n = len(get_layers(model))
        h = int(model.config.get_text_config().hidden_size)
        src = self.meta.get("model", "another model")
        where = f"{self.path}: " if getattr(self, "path", None) else ""
        if (n, h) != (self.n_layers, self.hidden_size):
            raise SteerscaleError(
                f"{where}vectors from {src} have {self.n_layers} layers x hidden {self.hidden_size}; "
                f"this model has {n} layers x hidden {h}"
            )

    def normalized(self, how: str, mean_norm: torch.Tensor | None = None) -> "SteeringVectors":
        if how not in NORMALIZATIONS:
            raise SteerscaleError(f"normalization {how!r}: expected one of {', '.join(NORMALIZATIONS)}")
        v = self.vectors
        if how == "unit":
            v = v / v.norm(dim=-1, keepdim=True).clamp_min(1e-12)
        elif how == "residual":
            if mean_norm is None:
                raise SteerscaleError("normalization 'residual' needs the mean residual norm per layer")
            v = v / v.norm(dim=-1, keepdim=True).clamp_min(1e-12) * mean_norm.view(-1, 1)
        return SteeringVectors(v.clone(), dict(self.meta, normalization=how))

    def save(self, path) -> Path:
        return save_with_meta(path, {"vectors": self.vectors.contiguous()}, self.meta)

    @classmethod
    def load(cls, path) -> "SteeringVectors":
        tensors, meta = read_safetensors(path)
        if "vectors" not in tensors:
            raise SteerscaleError(f"{path}: no 'vectors' tensor; expected a file written by steerscale train")
        m = json_meta(path, meta)
        t = tensors["vectors"]
        if t.ndim != 2 or not t.is_floating_point():
            raise SteerscaleError(f"{path}: tensor 'vectors' has shape {tuple(t.shape)} and dtype {t.dtype}; "
                                  f"expected a float [n_layers, hidden] tensor")
        vecs = cls(t.float(), m)
        vecs.path = str(path)
        return vecs

    # habits of steering-vectors and repeng (steerscale.vector_ops holds the logic)

    def apply(self, model: PreTrainedModel, multiplier: float = 1.0, layers=None, positions: str = "all"):
        """``with vecs.apply(model, multiplier=4.0, layers=None): ...``: steer `model` inside the block (hooks
        always removed); layers=None = every layer of the vectors, -1 = the last. See vector_ops.apply."""
        from .vector_ops import apply

        return apply(self, model, multiplier, layers, positions)

    def export_gguf(self, path, layers=None, multiplier: float = 1.0, model_hint: str | None = None) -> Path:
        """A llama.cpp / repeng control vector GGUF (interop.export_llama_cpp); model_hint = the model type."""
        from .vector_ops import export_gguf

        return export_gguf(self, path, layers, multiplier, model_hint)

    def __neg__(self) -> "SteeringVectors":
        from . import vector_ops

        return vector_ops.neg(self)

    def __mul__(self, k) -> "SteeringVectors":
        from . import vector_ops

        return vector_ops.scale(self, k, "*")

    __rmul__ = __mul__

    def __truediv__(self, k) -> "SteeringVectors":
        from . import vector_ops

        return vector_ops.scale(self, k, "/")

    def __add__(self, other) -> "SteeringVectors":
        from . import vector_ops

        return vector_ops.add(self, other, +1)

    def __sub__(self, other) -> "SteeringVectors":
        from . import vector_ops

        return vector_ops.add(self, other, -1)


def train_vectors(
    model: PreTrainedModel,
    tokenizer: Tokenizer,
    items: list[ABItem],
    template: str = "chat",
    system: str | None = None,
    normalize: str = "none",
    batch_size: int = 8,
    cache_dir: str | Path | None = None,
    keep_activations: bool = False,
    progress: bool = True,
    info=None,
    letter_balance: str = "balanced",
) -> SteeringVectors:
    """Steering vectors from contrastive items with the estimator `letter_balance` (``letters.ESTIMATORS``);
    reuses a cached activation file when the inputs match. ``meta["letter"]`` holds the letter figures
    (``LetterFigures``); a warning is logged when the imbalance term is over 10% of |v| at any layer.
    ``swap`` reads the items (the same activations, and cache file, as the other estimators) and then their
    option-swapped twins (twice the forward passes); its kept activations, if asked for, are the items' only."""
    if normalize not in NORMALIZATIONS:
        raise SteerscaleError(f"normalization {normalize!r}: expected one of {', '.join(NORMALIZATIONS)}")
    if letter_balance not in ESTIMATORS:
        raise SteerscaleError(f"letter_balance {letter_balance!r}: expected one of {', '.join(ESTIMATORS)}")
    if not items:
        raise SteerscaleError("no items to train vectors on")
    counts = letter_counts(items)
    if letter_balance == "balanced":
        check_balanceable(item_cells(items))  # before any forward pass
    info = info or model_info(model)
    meta = {
        "model": info.name,
        "model_spec": info.spec,
        "model_type": info.model_type,  # interop's model_hint (llama.cpp, repeng)
        "n_layers": info.n_layers,
        "hidden_size": info.hidden_size,
        "dataset_hash": dataset_hash(items),
        "n_items": len(items),
        "template": template,
        "system": system or "",
        "read_at": "output of decoder layer L, answer token",
        "weights_fingerprint": info.weights_fingerprint or weights_fingerprint(model),
        "letter_balance": letter_balance,
    }
    # Tokenising is cheap next to a forward pass: done even on a cache hit, to know the answer scheme.
    enc = encode_items(tokenizer, items, template, system)
    meta["answer_scheme"] = answer_scheme(enc)
    meta.update(answer_record(tokenizer, enc))  # the answer opening and the first item's last prompt tokens
    run = dict(model=model, tokenizer=tokenizer, info=info, template=template, system=system, batch_size=batch_size,
               cache_dir=cache_dir, progress=progress, meta=meta)
    stats = _activations(items, enc, keep=keep_activations, **run)
    if letter_balance == "swap":  # the items' own pass (shared with the other estimators' cache) + the twins'
        twins = [swap_item(it) for it in items]
        tenc = encode_items(tokenizer, twins, template, system)
        if answer_scheme(tenc) != meta["answer_scheme"]:
            raise SteerscaleError("the option-swapped items tokenise their answer letter another way than the items")
        stats = _merge(stats, _activations(twins, tenc, keep=False, **run))
    if not stats.has_cells:
        raise SteerscaleError("activations without per-letter sums; cannot estimate letter-balanced vectors")
    if letter_balance == "none":
        v = stats.mean_diff.clone()  # CAA's raw mean, exactly as before the letter estimators
        try:
            dec = decompose(stats.cells)
        except SteerscaleError:  # a letter that never matches: no balanced reference, figures unknown
            dec = None
    else:
        dec = decompose(stats.cells)  # refuses cells where a letter never matches
        v = dec.raw.float() if letter_balance == "swap" else dec.balanced.float()
    if dec is not None:
        fig = letter_figures(letter_balance, counts, v, dec)
    else:
        n = v.shape[0]
        fig = LetterFigures(letter_balance, counts, len(items), round((counts.get("A", 0) - counts.get("B", 0))
                            / len(items), 6), [None] * n, [None] * n, [round(float(x), 6) for x in v.norm(dim=-1)],
                            [None] * n, [None] * n)  # unknown: no balanced reference to measure against
    meta["letter"] = fig.to_meta()
    warn_imbalance(fig, f"vectors from {len(items)} items")
    vecs = SteeringVectors(v, dict(meta, normalization="none"))
    vecs.meta["mean_residual_norm"] = [round(float(x), 6) for x in stats.mean_norm]
    return vecs.normalized(normalize, stats.mean_norm)


def _activations(items, enc, *, model: PreTrainedModel, tokenizer: Tokenizer, info, template, system, batch_size,
                 cache_dir, progress, meta, keep: bool) -> ActivationStats:
    """The activation statistics of `items` (encoded `enc`): from ``cache_dir`` when a file for exactly these
    inputs with per-letter sums is there, else collected now (and cached)."""
    cache_path = None
    if cache_dir is not None:
        key = cache_key(info.name, info.n_params, info.dtype, items, template, system, spec=info.spec,
                        fingerprint=meta["weights_fingerprint"])
        cache_path = Path(cache_dir) / f"activations-{key}.safetensors"
        if cache_path.is_file():
            cached = ActivationStats.load(cache_path)
            same_scheme = (cached.meta.get("answer_scheme", "split") == meta["answer_scheme"]
                           and cached.meta.get("answer_opening", "(") == meta["answer_opening"])
            if same_scheme and cached.has_cells and cached.n_items == len(items) and (not keep or cached.kept):
                return cached
    keep_dir = cache_path.with_suffix(".shards") if (keep and cache_path is not None) else None
    stats = collect_activations(model, tokenizer, enc, batch_size, keep=keep, progress=progress,
                                meta={**{k: v for k, v in meta.items() if k != "letter_balance"},
                                      "dataset_hash": dataset_hash(items), "n_items": len(items)},
                                keep_dir=keep_dir)
    if cache_path is not None:
        stats.save(cache_path)
    return stats


def _merge(a: ActivationStats, b: ActivationStats) -> ActivationStats:
    """Statistics of two item sets together (cells summed; means weighted by item counts); kept activations
    stay with `a` only (its shard_dir)."""
    cells = dict(a.cells)
    for k, (t, n) in b.cells.items():
        cells[k] = (cells[k][0] + t, cells[k][1] + n) if k in cells else (t, n)
    n = a.n_items + b.n_items
    mean_diff = ((a.mean_diff.double() * a.n_items + b.mean_diff.double() * b.n_items) / n).float()
    mean_norm = ((a.mean_norm.double() * a.n_items + b.mean_norm.double() * b.n_items) / n).float()
    return ActivationStats(mean_diff, mean_norm, n, dict(a.meta), None, cells)


RUN_KEYS = ("model", "n_layers", "hidden_size", "dataset_hash", "n_items", "template", "system", "normalization",
            "weights_fingerprint", "answer_scheme", "answer_opening", "letter_balance")


def vectors_for_run(model: PreTrainedModel, tokenizer: Tokenizer, items: list[ABItem], path, *, template: str = "chat",
                    system: str | None = None, normalize: str = "none", batch_size: int = 8, dataset: str | None = None,
                    info=None, cache_dir=None, progress: bool = True, on_mismatch: str = "refuse",
                    letter_balance: str = "balanced", sampling: dict | None = None) -> SteeringVectors:
    """The steering vectors of a run folder: ``path`` (``<out>/vectors.safetensors``) when it was trained
    the same way, else trained on `items` now and saved there (atomically: a killed run leaves no file or
    the whole file). "The same way" is every key of ``RUN_KEYS`` in the file's metadata: model name, layer
    count and hidden size, ``weights_fingerprint`` (so another checkpoint or dtype differs), the items'
    ``dataset_hash`` and count, template, system prompt, normalisation, the answer scheme and the estimator
    ``letter_balance`` (a file without it, trained before the letter estimators, is CAA's raw mean and is
    not reused for another estimator). Batch size
    and device are not in the key (the activation cache ignores them too).

    A file trained another way: ``on_mismatch="refuse"`` raises SteerscaleError naming every differing
    key (the CLI: the folder's other results were made with that file), ``"retrain"`` replaces it (reproduce,
    which has already dropped the folder's results of the old configuration). `dataset` is recorded in
    the metadata of vectors trained here, and `sampling` (``data.sampling_record``: how a limit drew the
    items); `cache_dir` caches the activations (``train_vectors``)."""
    if on_mismatch not in ("refuse", "retrain"):
        raise ValueError(f"on_mismatch {on_mismatch!r}: expected 'refuse' or 'retrain'")
    path = Path(path)
    info = info or model_info(model)
    if path.exists():
        want = {"model": info.name, "n_layers": info.n_layers, "hidden_size": info.hidden_size,
                "dataset_hash": dataset_hash(items), "n_items": len(items), "template": template,
                "system": system or "", "normalization": normalize,
                "weights_fingerprint": info.weights_fingerprint or weights_fingerprint(model),
                "answer_scheme": answer_scheme(enc := encode_items(tokenizer, items, template, system)),
                "answer_opening": answer_record(tokenizer, enc)["answer_opening"],
                "letter_balance": letter_balance}
        old = SteeringVectors.load(path)
        old.meta.setdefault("letter_balance", "none (no letter figures: trained before the letter estimators)")
        had = dict({"answer_opening": "("}, **old.meta)  # files from before the opening was recorded: '('
        diffs = [f"{k}: {had.get(k)!r} vs {v!r}" for k, v in want.items() if had.get(k) != v]
        if not diffs:
            return old
        if on_mismatch == "refuse":
            raise SteerscaleError(f"{path}: trained with a different setup ({'; '.join(diffs)}; old vs new); "
                                  f"use a new --out folder or delete this one")
    vecs = train_vectors(model, tokenizer, items, template, system, normalize, batch_size, cache_dir=cache_dir,
                         progress=progress, info=info, letter_balance=letter_balance)
    if dataset is not None:
        vecs.meta["dataset"] = str(dataset)
    if sampling is not None:
        vecs.meta["sampling"] = sampling
    vecs.save(path)
    return vecs


# ------------------------------------------------------------ several behaviours, similarity, transfer


def normalize_across_behaviours(vectors: dict[str, SteeringVectors]) -> dict[str, SteeringVectors]:
    """Rescale each behaviour's vector at each layer to the mean norm across behaviours at that layer.

    This is what the CAA code does when vectors for several behaviours are made together
    (``normalize_vectors``): directions are kept, and at every layer all behaviours get the same norm,
    so one multiplier means the same step size for each. Needs at least one behaviour; all must have
    the same shape.
    """
    if not vectors:
        raise SteerscaleError("normalize_across_behaviours: no behaviours given")
    shapes = {name: tuple(v.vectors.shape) for name, v in vectors.items()}
    if len(set(shapes.values())) != 1:
        raise SteerscaleError(f"normalize_across_behaviours: vectors differ in shape: {shapes}")
    norms = torch.stack([v.vectors.norm(dim=-1) for v in vectors.values()])  # [B, L]
    target = norms.mean(0)  # [L]
    out = {}
    for name, v in vectors.items():
        scaled = v.vectors / v.vectors.norm(dim=-1, keepdim=True).clamp_min(1e-12) * target.view(-1, 1)
        out[name] = SteeringVectors(scaled, dict(v.meta, normalization="across-behaviours",
                                                 behaviours=sorted(vectors)))
    return out


def _cos(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    a = a.double() / a.double().norm(dim=-1, keepdim=True).clamp_min(1e-12)
    b = b.double() / b.double().norm(dim=-1, keepdim=True).clamp_min(1e-12)
    return a @ b.T


def layer_cosine(vectors: SteeringVectors) -> torch.Tensor:
    """[n_layers, n_layers] cosine similarity of one behaviour's vectors between layers."""
    return _cos(vectors.vectors, vectors.vectors).float()


def cosine_table(vectors: dict[str, SteeringVectors]) -> list[dict]:
    """Tidy rows (behaviour_a, layer_a, behaviour_b, layer_b, cosine) for every pair of (behaviour, layer).

    Between layers within a behaviour and, for two or more behaviours, between behaviours at every
    pair of layers. Behaviours must share the hidden size.
    """
    if not vectors:
        raise SteerscaleError("cosine_table: no vectors given")
    hs = {name: v.hidden_size for name, v in vectors.items()}
    if len(set(hs.values())) != 1:
        raise SteerscaleError(f"cosine_table: hidden sizes differ: {hs}")
    names = list(vectors)
    rows = []
    for a in names:
        for b in names:
            c = _cos(vectors[a].vectors, vectors[b].vectors)
            for la in range(c.shape[0]):
                for lb in range(c.shape[1]):
                    rows.append({"behaviour_a": a, "layer_a": la, "behaviour_b": b, "layer_b": lb,
                                 "cosine": float(c[la, lb])})
    return rows


TRANSFER_MAPS = ("relative", "same")


def map_layers(n_source: int, n_target: int, how: str = "relative") -> list[int]:
    """For each target layer, the source layer whose vector it gets.

    "same": layer L -> layer L, and the layer counts must match. "relative": by relative depth,
    target layer t takes source layer floor(t * (n_source - 1) / (n_target - 1) + 0.5) (first to first,
    last to last).
    """
    if how not in TRANSFER_MAPS:
        raise SteerscaleError(f"layer map {how!r}: expected one of {', '.join(TRANSFER_MAPS)}")
    if how == "same":
        if n_source != n_target:
            raise SteerscaleError(f"layer map 'same': source has {n_source} layers, target {n_target}; "
                                  "use the 'relative' map for models of different depth")
        return list(range(n_target))
    if n_target == 1:
        return [n_source - 1]
    return [int(math.floor(t * (n_source - 1) / (n_target - 1) + 0.5)) for t in range(n_target)]


def transfer_vectors(vectors: SteeringVectors, target_model=None, *, n_layers: int | None = None,
                     hidden_size: int | None = None, how: str = "relative") -> SteeringVectors:
    """Vectors made on one model, laid out for another with the same hidden size.

    Give the target model (its layer count and hidden size are read) or `n_layers` and `hidden_size`.
    The result has one vector per target layer (see `map_layers`); the vectors themselves are not
    rescaled, so a multiplier means the same raw step in both models.
    """
    if target_model is not None:
        n_layers = len(get_layers(target_model))
        hidden_size = int(target_model.config.get_text_config().hidden_size)
    if n_layers is None or hidden_size is None:
        raise SteerscaleError("transfer_vectors: give the target model or n_layers and hidden_size")
    if hidden_size != vectors.hidden_size:
        raise SteerscaleError(f"cannot transfer vectors of hidden size {vectors.hidden_size} to a model with "
                              f"hidden size {hidden_size}; transfer needs the same hidden size")
    src = map_layers(vectors.n_layers, n_layers, how)
    meta = dict(vectors.meta, transferred_from=vectors.meta.get("model", "?"), layer_map=how, source_layers=src,
                n_layers=n_layers)
    return SteeringVectors(vectors.vectors[src].clone(), meta)
