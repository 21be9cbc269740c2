"""Forward hooks on decoder layers, as context managers that always remove themselves.

Named place: steering adds ``multiplier * vector[L]`` to the *output of decoder
layer L* (the residual stream after the MLP's residual add, before block L+1),
the same place activations are read. Positions: every token (``start=None``,
the paper's rule) or token index >= ``start`` per batch row (the CAA rule:
from the last token of the instruction on). During generation every new
token is steered. ``Steering.for_batch(batch)`` is where a caller hands the hook the
next batch; the hook then knows where steering starts in each row.

This module is the only place that touches the model's parts: forward hooks on decoder layers
(``layer_hooks``, ``steer``, ``capture``), on residual writers (``ablate``) and on the output head
(``contiguous_head``), and decoder layers swapped for stand-ins during a partial forward pass
(``partial_forward``, the fast engine's layer skipping). All of them are context managers that put the
model back in ``finally``.

Why this module is long: every model surgery lives in one place (house style), and it now holds the gradient
screen's differentiable multipliers (``steer_grad``) beside the hooks they share; splitting it would put hooks on
the same layers in two modules.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import TYPE_CHECKING, Callable, Iterable

import torch

from ..errors import SteerscaleError
from .models import get_layers, resolve_layers
from .types import FittedVectors

if TYPE_CHECKING:
    from transformers import PreTrainedModel

    from .types import LayerVectors

POSITIONS = ("all", "instruction_end")


def _hidden(output):
    return output[0] if isinstance(output, tuple) else output


def _replace(output, hidden):
    return (hidden,) + tuple(output[1:]) if isinstance(output, tuple) else hidden


@contextmanager
def layer_hooks(model: PreTrainedModel, fns: dict[int, Callable[[torch.Tensor], torch.Tensor | None]]):
    """Run ``fn(hidden)`` on the output of each decoder layer in `fns`; a returned tensor replaces it."""
    layers = get_layers(model)
    for l in fns:
        if not 0 <= l < len(layers):
            raise SteerscaleError(f"layer {l} out of range: this model has layers 0..{len(layers) - 1}")
    handles = []

    def make(fn):
        def hook(module, args, output):
            new = fn(_hidden(output))
            return None if new is None else _replace(output, new)

        return hook

    try:
        for l, fn in fns.items():
            handles.append(layers[l].register_forward_hook(make(fn)))
        yield
    finally:
        for h in handles:
            h.remove()


class Steering:
    """State of an active steering hook: vectors, multiplier(s), and where steering starts.

    ``positions="all"`` steers every token. ``positions="instruction_end"`` steers token index >=
    ``start`` (an int, or one index per row); callers give the hook each batch with ``for_batch(batch)``
    instead of setting ``start`` themselves. A generated token (a step of one position) is always steered.
    """

    def __init__(self, vectors: dict[int, torch.Tensor], multiplier, positions: str = "all", start=None):
        if positions not in POSITIONS:
            raise SteerscaleError(f"positions {positions!r}: expected one of {', '.join(POSITIONS)}")
        self.vectors = vectors
        self.multiplier = multiplier
        self.positions = positions
        self.start = start

    def for_batch(self, batch, instruction: bool = True) -> "Steering":
        """Tell the hook which batch (a ``batching.Batch`` on the model's device) runs next; returns self.

        With ``positions="instruction_end"`` steering starts at each row's ``batch.instruction_end``
        (padded coordinates); ``instruction=False`` marks text without an instruction (neutral text):
        every position of every row is steered. With ``positions="all"`` nothing changes.
        """
        if self.positions == "instruction_end":
            if instruction:
                self.start = batch.instruction_end
            else:
                ids = batch.input_ids
                self.start = torch.zeros(ids.shape[0], dtype=torch.long, device=ids.device)
        return self

    def add(self, layer: int, h: torch.Tensor) -> torch.Tensor:
        v = self.vectors[layer].to(device=h.device, dtype=h.dtype)
        m = self.multiplier
        if isinstance(m, torch.Tensor):  # one multiplier per batch row
            delta = m.to(device=h.device, dtype=h.dtype).view(-1, 1, 1) * v
        else:
            delta = float(m) * v
        if self.positions == "all" or h.shape[1] == 1:  # all positions, or a generated token
            return h + delta
        if self.start is None:
            raise SteerscaleError("positions 'instruction_end' needs the start index of each row "
                                  "(Steering.for_batch(batch) before the forward pass)")
        start = torch.as_tensor(self.start, device=h.device).view(-1, 1)
        mask = (torch.arange(h.shape[1], device=h.device).view(1, -1) >= start).unsqueeze(-1)
        return h + mask.to(h.dtype) * delta


def check_vectors(model: PreTrainedModel, vectors: object) -> None:
    """The one rule for the kinds of vectors steering accepts: SteeringVectors (any ``types.FittedVectors``) are
    checked against `model`; a tensor or a dict layer -> vector is used as given; anything else is refused."""
    if isinstance(vectors, FittedVectors):
        vectors.check_model(model)
    elif not isinstance(vectors, (torch.Tensor, dict)):
        raise SteerscaleError(f"steering vectors: got {type(vectors).__name__}; expected SteeringVectors, a "
                              f"[n_layers, hidden] torch.Tensor or a dict layer -> tensor")


def _layer_vectors(vectors: LayerVectors, layers: Iterable[int]) -> dict[int, torch.Tensor]:
    out = {}
    for l in layers:
        try:
            out[int(l)] = vectors[int(l)]
        except (IndexError, KeyError):
            n = len(vectors)
            raise SteerscaleError(f"layer {l} out of range: the vectors cover layers 0..{n - 1}") from None
    return out


@contextmanager
def steer(model: PreTrainedModel, vectors: LayerVectors, layers: int | Iterable[int] | None = None, multiplier=1.0,
          positions: str = "all", start=None):
    """Add ``multiplier * vectors[L]`` to the output of each decoder layer L in `layers`.

    `layers`: an index or indices (negative count from the end: -1 is the last layer); None steers every
    layer the vectors cover.

    `vectors`: a SteeringVectors, a [n_layers, hidden] tensor, or a dict layer -> vector.
    `multiplier`: a float, or a tensor with one value per batch row.
    `positions`: "all" (every token) or "instruction_end" (token index >= `start`, an int or
    per-row tensor; evaluation and generation pass each batch with ``Steering.for_batch``).
    Yields the Steering object.
    """
    check_vectors(model, vectors)
    n = len(get_layers(model))
    if layers is None:
        layers = sorted(vectors) if isinstance(vectors, dict) else range(min(n, len(vectors)))
    layers = resolve_layers([layers] if isinstance(layers, int) else list(layers), n)
    state = Steering(_layer_vectors(vectors, layers), multiplier, positions, start)
    with layer_hooks(model, {l: (lambda h, l=l: state.add(l, h)) for l in layers}):
        yield state


@contextmanager
def capture(model: PreTrainedModel, layers: Iterable[int] | None = None, position: int = -1):
    """Record the output of decoder layers at one token position; yields a dict layer -> list of [B, H]."""
    n = len(get_layers(model))
    layers = range(n) if layers is None else layers
    store: dict[int, list[torch.Tensor]] = {l: [] for l in layers}

    def rec(l):
        def fn(h):
            # clone: a view would keep the whole [batch, seq, hidden] output of every layer alive
            store[l].append(h[:, position].detach().clone())

        return fn

    with layer_hooks(model, {l: rec(l) for l in layers}):
        yield store


class LayerMultipliers(Steering):
    """Steering with its own multiplier per layer and batch row: zero leaves that require grad.

    The gradient screen's hook state (``steer_grad``): ``for_batch(batch)`` makes fresh zero tensors
    ``multipliers[L]`` of shape [rows] (float64, requiring grad) for every steered layer, so one backward
    pass gives d(output)/dm at m = 0 for every layer and item at once. The arithmetic is ``Steering.add``'s
    (same vectors, same positions rule); only where the multiplier comes from differs.
    """

    def __init__(self, vectors: dict[int, torch.Tensor], positions: str = "all"):
        super().__init__(vectors, 0.0, positions)
        self.multipliers: dict[int, torch.Tensor] = {}

    def for_batch(self, batch, instruction: bool = True) -> "LayerMultipliers":
        super().for_batch(batch, instruction)
        rows = batch.input_ids.shape[0]
        self.multipliers = {l: torch.zeros(rows, dtype=torch.float64, device=batch.input_ids.device,
                                           requires_grad=True) for l in self.vectors}
        return self

    def add(self, layer: int, h: torch.Tensor) -> torch.Tensor:
        if layer not in self.multipliers:
            raise SteerscaleError("steer_grad: call LayerMultipliers.for_batch(batch) before the forward pass")
        self.multiplier = self.multipliers[layer]
        return super().add(layer, h)


@contextmanager
def steer_grad(model: PreTrainedModel, vectors: LayerVectors, layers: Iterable[int], positions: str = "all"):
    """Add ``m_L * vectors[L]`` at every layer L in `layers` with zero multipliers that require grad.

    While active: grad is enabled, every parameter of the model has ``requires_grad=False`` (no weight
    gradients are computed or kept; the previous flags come back in ``finally``) and each layer's hook adds
    its own zero multiplier (``LayerMultipliers``; a zero multiplier leaves the forward pass unchanged).
    Yields the LayerMultipliers: call ``for_batch(batch)`` before each forward pass, then differentiate the
    output with respect to ``state.multipliers``.
    """
    check_vectors(model, vectors)
    state = LayerMultipliers(_layer_vectors(vectors, layers), positions)
    flags = [(p, p.requires_grad) for p in model.parameters()]
    try:
        for p, _ in flags:
            p.requires_grad_(False)
        with torch.enable_grad(), layer_hooks(model, {l: (lambda h, l=l: state.add(l, h)) for l in state.vectors}):
            yield state
    finally:
        for p, f in flags:
            p.requires_grad_(f)


# ----------------------------------------------------------------------------- the output head


@contextmanager
def contiguous_head(model: PreTrainedModel):
    """Hand the output head a contiguous input while active (same numbers, up to float rounding).

    With ``logits_to_keep=1`` the head sees ``hidden[:, -1:, :]``, a non-contiguous 3-D view, and
    torch's matmul then runs a batched matmul over the weight expanded per row instead of one matmul
    (for a weight without grad); in bfloat16 that materialises B copies of the vocab x hidden weight.
    Measured cost of both: docs/cost_model.md ("The head").
    """
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    handle = None
    if isinstance(head, torch.nn.Module):
        handle = head.register_forward_pre_hook(lambda mod, args: (args[0].contiguous(), *args[1:]) if args else None)
    try:
        yield
    finally:
        if handle is not None:
            handle.remove()


# ----------------------------------------------------------------------------- partial forward passes


class StandIn(torch.nn.Module):
    """Stands in for a decoder layer: returns ``value`` (a cached residual) or, if None, its input.

    ``as_tuple``: return ``(hidden,)``, as the layers of some models do (``hfcompat.layer_returns_tuple``).
    Attributes a model's layer loop reads (``attention_type``, ``layer_idx``, ...) come from the layer it
    replaces, which is not a submodule (no parameters, no hooks).
    """

    def __init__(self, orig: torch.nn.Module, value: torch.Tensor | None = None, as_tuple: bool = False):
        super().__init__()
        object.__setattr__(self, "_orig", orig)  # not a submodule: no parameters, no hooks
        object.__setattr__(self, "value", value)
        object.__setattr__(self, "as_tuple", as_tuple)

    def forward(self, hidden_states, *args, **kwargs):
        out = hidden_states
        if self.value is not None:
            if self.value.shape != hidden_states.shape:
                raise RuntimeError(f"cached residual {tuple(self.value.shape)} != layer input "
                                   f"{tuple(hidden_states.shape)}")
            out = self.value
        return (out,) if self.as_tuple else out

    def __getattr__(self, name):  # attributes a model loop may read (attention_type, layer_idx, ...)
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(object.__getattribute__(self, "_orig"), name)


@contextmanager
def replaced_layers(layers: torch.nn.ModuleList, repl: dict[int, torch.nn.Module]):
    """Put ``repl[i]`` in place of ``layers[i]`` while active; the originals always come back."""
    orig = {i: layers[i] for i in repl}
    try:
        for i, m in repl.items():
            layers[i] = m
        yield
    finally:
        for i, m in orig.items():
            layers[i] = m


@contextmanager
def partial_forward(layers: torch.nn.ModuleList, start_at: int = 0, residual: torch.Tensor | None = None,
                    stop_after: int | None = None, as_tuple: bool = False):
    """While active, the model's own forward runs only decoder layers ``start_at .. stop_after``.

    The concept of TransformerLens's ``start_at_layer`` / ``stop_at_layer``, done without a copy of the
    model's loop: layers ``0 .. start_at-1`` are stand-ins (``StandIn``), the one before ``start_at``
    returning ``residual`` (the output of layer ``start_at-1``, shape of the layer input) and the
    others their input; layers after ``stop_after`` pass their input through. Everything else
    (embeddings, masks, rotary tables, per-layer attention types, final norm, head) is the model's code.
    `layers`: the model's decoder-layer list (``models.get_layers``); `as_tuple`: what the layers return.
    """
    repl = {i: StandIn(layers[i], residual if i == start_at - 1 else None, as_tuple) for i in range(start_at)}
    if stop_after is not None:
        repl.update({i: StandIn(layers[i], None, as_tuple) for i in range(stop_after + 1, len(layers))})
    with replaced_layers(layers, repl):
        yield


class _Stopped(Exception):
    pass


def first_layer_output(base: torch.nn.Module, layers: torch.nn.ModuleList, **inputs):
    """The raw output of decoder layer 0 (a tensor or a tuple) when ``base(**inputs)`` runs; the rest of
    the forward pass is not run. None if the forward never called layer 0."""
    seen: dict = {}

    def hook(module, args, output):
        seen["out"] = output
        raise _Stopped

    handle = layers[0].register_forward_hook(hook)
    try:
        with torch.no_grad():
            base(**inputs)
    except _Stopped:
        pass
    finally:
        handle.remove()
    return seen.get("out")


WINDOW_MODES = ("per-layer", "same")


def window_vectors(vectors: LayerVectors, start: int, width: int, mode: str = "per-layer",
                   source_layer: int | None = None, n_layers: int | None = None) -> dict[int, torch.Tensor]:
    """Vectors for multi-layer injection over layers ``start .. start + width - 1``.

    mode "per-layer": each layer L in the window gets its own vector[L];
    mode "same": every layer in the window gets vector[source_layer] (default: the window's first layer).
    Pass the result to ``steer(model, result, list(result), multiplier)``: each layer in the window adds the
    full ``multiplier * vector`` to its output (the multiplier is not divided by the width).
    """
    if mode not in WINDOW_MODES:
        raise SteerscaleError(f"window mode {mode!r}: expected one of {', '.join(WINDOW_MODES)}")
    n = len(vectors) if n_layers is None else n_layers
    if width < 1:
        raise SteerscaleError(f"window width {width}: expected a positive integer")
    if start < 0 or start + width > n:
        raise SteerscaleError(f"window {start}..{start + width - 1}: out of range, layers are 0..{n - 1}")
    layers = range(start, start + width)
    if mode == "per-layer":
        return _layer_vectors(vectors, layers)
    src = _layer_vectors(vectors, [start if source_layer is None else source_layer])
    v = next(iter(src.values()))
    return {l: v for l in layers}


# ----------------------------------------------------------------------------- directional ablation

# model_type -> names (relative to a decoder layer) of the modules whose outputs are *added to the residual
# stream*. Pre-norm blocks add the attention and MLP outputs; blocks with post-sublayer norms (Gemma 2/3,
# OLMo 2) add the outputs of those norms. Unknown types: register with `register_residual_writers`.
RESIDUAL_WRITERS: dict[str, tuple[str, ...]] = {
    **{t: ("self_attn", "mlp") for t in ("llama", "mistral", "mixtral", "qwen2", "qwen3", "gemma", "phi3", "olmo")},
    **{t: ("post_attention_layernorm", "post_feedforward_layernorm") for t in ("gemma2", "gemma3_text", "gemma3",
                                                                                "olmo2")},
    "gpt2": ("attn", "mlp"),
    "gpt_neox": ("attention", "mlp"),
}


def register_residual_writers(model_type: str, names: tuple[str, ...]) -> None:
    """Teach `ablate` which submodules of a decoder layer write into the residual stream (their outputs are added)."""
    RESIDUAL_WRITERS[model_type] = tuple(names)


def orthonormal_basis(directions) -> torch.Tensor:
    """[k, hidden] float64 orthonormal rows spanning `directions` ([hidden] or [k, hidden]); refuses zero/NaN input."""
    d = torch.as_tensor(directions).detach().to("cpu", torch.float64)
    if d.ndim == 1:
        d = d.unsqueeze(0)
    if d.ndim != 2 or d.shape[0] == 0:
        raise SteerscaleError(f"directions of shape {tuple(d.shape)}: expected [hidden] or [k, hidden]")
    if not torch.isfinite(d).all():
        raise SteerscaleError("directions contain NaN or Inf")
    norms = d.norm(dim=-1)
    if (norms < 1e-12).any():
        raise SteerscaleError("a direction to ablate has zero norm")
    q, r = torch.linalg.qr((d / norms[:, None]).T)
    if (r.diagonal().abs() < 1e-8).any():
        raise SteerscaleError(f"the {d.shape[0]} directions to ablate are linearly dependent")
    return q.T.contiguous()


def _writer_modules(model: PreTrainedModel, layer):
    mtype = getattr(model.config, "model_type", type(model).__name__)
    if mtype not in RESIDUAL_WRITERS:
        raise SteerscaleError(f"ablation: no residual-writer table for architecture {mtype!r} (known: "
                              f"{', '.join(sorted(RESIDUAL_WRITERS))}); add one with steerscale.steering."
                              f"register_residual_writers({mtype!r}, ('self_attn', 'mlp'))")
    out = []
    for name in RESIDUAL_WRITERS[mtype]:
        if not hasattr(layer, name):
            raise SteerscaleError(f"ablation: architecture {mtype!r}: decoder layer has no submodule {name!r}")
        out.append(getattr(layer, name))
    return out


@contextmanager
def ablate(model: PreTrainedModel, directions, layers: Iterable[int] | None = None, embedding: bool = True):
    """Directional ablation: remove the component along `directions` from everything written to the residual stream.

    `directions`: one direction [hidden] or several [k, hidden] (their span is removed); any norm.
    With Q the orthonormal basis, every ablated tensor x becomes ``x - (x Q^T) Q`` at every token position.
    Places: the residual entering decoder layer 0 (the embedding output, after any scaling and position
    embeddings; when `embedding`), and the output of each residual-writing submodule (attention and MLP, or
    their post-norms; see RESIDUAL_WRITERS) of every layer in `layers` (default all). With the defaults the
    residual stream holds no component along Q anywhere (up to float rounding), which is what the refusal-
    direction code does with its block-input and attention/MLP-output hooks, and what weight
    orthogonalisation (steerscale.orthogonalize) bakes into the weights. Note: projecting only the *outputs
    of decoder layers* is not the same: the MLP would still read the attention's component along Q.
    """
    layer_list = get_layers(model)
    n = len(layer_list)
    sel = range(n) if layers is None else [int(l) for l in ([layers] if isinstance(layers, int) else layers)]
    for l in sel:
        if not 0 <= l < n:
            raise SteerscaleError(f"layer {l} out of range: this model has layers 0..{n - 1}")
    q64 = orthonormal_basis(directions)
    hidden = int(model.config.get_text_config().hidden_size)
    if q64.shape[1] != hidden:
        raise SteerscaleError(f"directions have size {q64.shape[1]}; this model's hidden size is {hidden}")
    cache: dict = {}

    def project(h: torch.Tensor) -> torch.Tensor:
        key = (h.device, h.dtype)
        if key not in cache:
            cache[key] = q64.to(device=h.device, dtype=h.dtype)
        q = cache[key]
        return h - (h @ q.T) @ q

    def out_hook(module, args, output):
        return _replace(output, project(_hidden(output)))

    def in_hook(module, args, kwargs):
        if args:
            return (project(args[0]),) + tuple(args[1:]), kwargs
        return args, dict(kwargs, hidden_states=project(kwargs["hidden_states"]))

    handles = []
    try:
        if embedding:
            handles.append(layer_list[0].register_forward_pre_hook(in_hook, with_kwargs=True))
        for l in sel:
            for mod in _writer_modules(model, layer_list[l]):
                handles.append(mod.register_forward_hook(out_hook))
        yield q64
    finally:
        for h in handles:
            h.remove()
