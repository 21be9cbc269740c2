"""Batched forward passes and the residual stream at the answer-letter token, for every layer.

Read place: output of decoder layer L (after the MLP residual add), at the
answer token (``Encoded.letter_ids``: the letter of ``(A`` / ``(B`` after a
prefilled ``(``, or the merged ``(A`` token where the tokenizer merges it), once
with the matching and once with the non-matching answer. Mean differences are accumulated in float64 as batches
stream past, so memory does not grow with the number of items; they are kept per letter cell (matching
letter, non-matching letter), so the letter-balanced estimator and the letter figures of ``letters.py`` come
from the same single pass as CAA's raw mean; per-item
activations are kept only when asked (``keep=True``), and then streamed to disk
as one safetensors shard per batch rather than held in RAM.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from tqdm.auto import tqdm

from .batching import batches, model_device, pad_id_of, pad_left
from .prompts import Encoded
from .data import dataset_hash
from ..errors import SteerscaleError
from .models import get_layers
from .steering import capture
from ..io.tensorio import atomic_save, read_safetensors

if TYPE_CHECKING:
    from transformers import PreTrainedModel

    from .types import Tokenizer


@dataclass
class ActivationStats:
    """Per-layer mean difference (matching - not matching) and mean residual norm at the answer token.

    Per-item activations, when kept, live on disk in ``shard_dir`` as one
    safetensors file per batch (``shard-00000.safetensors`` with tensors
    ``matching`` and ``not_matching``, each [items in batch, n_layers, hidden],
    float32, in item order); they are never all held in RAM unless you ask for
    ``.matching`` / ``.not_matching``.
    """

    mean_diff: torch.Tensor  # [n_layers, hidden], float32
    mean_norm: torch.Tensor  # [n_layers], mean L2 norm of the residual over both completions
    n_items: int
    meta: dict
    shard_dir: Path | None = None
    # per letter cell "A>B" (matching letter > non-matching letter): (sum of diff [n_layers, hidden] float64,
    # number of items); the cells' sums add up to n_items * mean_diff
    cells: dict = field(default_factory=dict)

    def shards(self) -> list[Path]:
        if self.shard_dir is None:
            return []
        return sorted(Path(self.shard_dir).glob("shard-*.safetensors"))

    @property
    def kept(self) -> bool:
        n = int(self.meta.get("n_shards", -1))
        return self.shard_dir is not None and len(self.shards()) == n

    def iter_kept(self):
        """(matching, not_matching) per shard, in item order; one shard in memory at a time."""
        for p in self.shards():
            t, _ = read_safetensors(p)
            yield t["matching"], t["not_matching"]

    def _cat(self, which: int) -> torch.Tensor | None:
        if not self.kept:
            return None
        return torch.cat([pair[which] for pair in self.iter_kept()])

    @property
    def matching(self) -> torch.Tensor | None:
        """All kept matching activations [n_items, n_layers, hidden], loaded into RAM (large)."""
        return self._cat(0)

    @property
    def not_matching(self) -> torch.Tensor | None:
        return self._cat(1)

    def save(self, path: Path) -> None:
        path = Path(path)
        tensors = {"mean_diff": self.mean_diff.contiguous(), "mean_norm": self.mean_norm.contiguous()}
        for key, (total, _) in self.cells.items():
            tensors[f"cell_sum:{key}"] = total.double().contiguous()
        meta = dict(self.meta, n_items=self.n_items, cell_counts={k: n for k, (_, n) in self.cells.items()},
                    cache_version=CACHE_VERSION)
        if self.shard_dir is not None:
            sd = Path(self.shard_dir)
            meta["shard_dir"] = sd.name if sd.parent.resolve() == path.parent.resolve() else str(sd)
        _atomic_save(tensors, path, {"steerscale": json.dumps(meta)})

    @classmethod
    def load(cls, path: Path) -> "ActivationStats":
        path = Path(path)
        t, meta = read_safetensors(path)
        try:
            m = json.loads(meta.get("steerscale", "{}"))
        except json.JSONDecodeError:
            raise SteerscaleError(f"{path}: metadata is not valid JSON") from None
        for k in ("mean_diff", "mean_norm"):
            if k not in t:
                raise SteerscaleError(f"{path}: no {k!r} tensor; expected an activation cache written by steerscale")
        sd = m.get("shard_dir")
        shard_dir = None if sd is None else (path.parent / sd if not Path(sd).is_absolute() else Path(sd))
        counts = m.get("cell_counts")
        cells = {}
        if isinstance(counts, dict):
            for key, n in counts.items():
                if f"cell_sum:{key}" not in t or isinstance(n, bool) or not isinstance(n, int) or n < 1:
                    raise SteerscaleError(f"{path}: letter cell {key!r} has no sum tensor or a bad count {n!r}; "
                                          f"expected an activation cache written by steerscale")
                cells[key] = (t[f"cell_sum:{key}"].double(), n)
        return cls(t["mean_diff"], t["mean_norm"], int(m.get("n_items", 0)), m, shard_dir, cells)

    @property
    def has_cells(self) -> bool:
        """True when the per-letter-cell sums are here and account for every item (a cache written before
        they existed has none: it must not be read as if it had)."""
        return bool(self.cells) and sum(n for _, n in self.cells.values()) == self.n_items


# safetensors read/write lives in tensorio (one place); these names stay for the callers of activations
_atomic_save = atomic_save


# Bumped whenever what an activation cache file holds changes (v2: per letter cell sums), so an older file
# is never read as a newer one (its key differs; ``ActivationStats.has_cells`` checks the file as well).
CACHE_VERSION = 2


def cache_key(model_name: str, n_params: int, dtype: str, items, template: str, system: str | None, *,
              spec: str, fingerprint: str) -> str:
    """Name of the activation cache file for these inputs: model (name, spec, size, dtype and
    ``models.weights_fingerprint``, so another checkpoint of the same name and shape gets its own
    cache), dataset content, template and system prompt."""
    payload = json.dumps(
        [model_name, n_params, dtype, dataset_hash(items), template, system or "", "answer_token", spec, fingerprint,
         f"cache-v{CACHE_VERSION}"],
        sort_keys=True,
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:20]


@torch.no_grad()
def collect_activations(
    model: PreTrainedModel,
    tokenizer: Tokenizer,
    encoded: list[Encoded],
    batch_size: int = 8,
    keep: bool = False,
    progress: bool = True,
    meta: dict | None = None,
    keep_dir: str | Path | None = None,
) -> ActivationStats:
    """Mean over items of (act at the matching answer token - act at the non-matching one), every layer.

    Each row is ``prefix_ids + [answer token]``, read at its last position, for either answer scheme.

    Memory stays bounded by one batch: sums are accumulated in float64 as batches
    stream past. With ``keep=True`` per-item activations are streamed to one
    safetensors shard per batch in `keep_dir` (a new temporary folder if not given),
    never gathered in RAM.
    """
    n_layers = len(get_layers(model))
    dev = model_device(model)
    pad_id = pad_id_of(tokenizer)
    diff_sum = None
    cell_sum: dict[str, torch.Tensor] = {}
    cell_n: dict[str, int] = {}
    norm_sum = torch.zeros(n_layers, dtype=torch.float64)
    shard_dir = None
    if keep:
        import tempfile

        shard_dir = Path(keep_dir) if keep_dir is not None else Path(tempfile.mkdtemp(prefix="steerscale-acts-"))
        shard_dir.mkdir(parents=True, exist_ok=True)
        for old in shard_dir.glob("shard-*.safetensors"):
            old.unlink()
    half = max(1, batch_size // 2)
    n_shards = 0
    for idx in tqdm(list(batches(len(encoded), half)), desc="activations", disable=not progress, leave=False):
        seqs = []
        for i in idx:
            e = encoded[i]
            seqs.append(e.prefix_ids + [e.letter_ids[e.item.matching]])
        for i in idx:
            e = encoded[i]
            seqs.append(e.prefix_ids + [e.letter_ids[e.item.not_matching]])
        b = pad_left(seqs, pad_id).to(dev)
        with capture(model) as store:
            model(**b.model_inputs(), use_cache=False)
        acts = torch.stack([store.pop(l)[0] for l in range(n_layers)], dim=1).float().cpu()  # [2k, L, H]
        del store
        if not torch.isfinite(acts).all():
            bad = sorted({int(x) for x in torch.nonzero(~torch.isfinite(acts))[:, 1].tolist()})[:5]
            raise SteerscaleError(f"activations contain NaN or Inf (items {idx.start}..{idx.stop - 1}, "
                                  f"layers {bad}); the model's weights or dtype overflow (try --dtype float32)")
        k = len(idx)
        am, an = acts[:k], acts[k:]
        per = (am - an).double()  # [k, L, H]
        d = per.sum(0)
        diff_sum = d if diff_sum is None else diff_sum.add_(d)
        for j, i in enumerate(idx):
            it = encoded[i].item
            key = f"{it.matching}>{it.not_matching}"
            if key in cell_sum:
                cell_sum[key].add_(per[j])
                cell_n[key] += 1
            else:
                cell_sum[key] = per[j].clone()
                cell_n[key] = 1
        del d, per
        norm_sum += acts.double().norm(dim=-1).sum(0)
        if keep:
            _atomic_save({"matching": am.contiguous(), "not_matching": an.contiguous()},
                         shard_dir / f"shard-{n_shards:05d}.safetensors", {"first_item": str(idx.start)})
            n_shards += 1
        del acts, am, an
    n = len(encoded)
    m = dict(meta or {})
    if keep:
        m["n_shards"] = n_shards
    return ActivationStats(
        mean_diff=(diff_sum / n).float(),
        mean_norm=(norm_sum / (2 * n)).float(),
        n_items=n,
        meta=m,
        shard_dir=shard_dir,
        cells={k: (cell_sum[k], cell_n[k]) for k in sorted(cell_sum)},
    )
