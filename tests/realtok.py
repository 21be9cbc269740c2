"""Real tokenizers for tests: llama.cpp's vocab-only GGUF files, fetched once from PyPI and cached.

The source distribution of ``llama-cpp-python`` carries ``vendor/llama.cpp/models/ggml-vocab-*.gguf``:
the vocabularies (and for some, the chat template) of Llama-2 (llama-spm), Llama-3 (llama-bpe), Qwen2,
Phi-3, GPT-2, Falcon, DeepSeek and more. ``pip download`` fetches the sdist into the cache folder
(``$STEERSCALE_TEST_CACHE``, default ``~/.cache/steerscale-tests``); only the vocab files asked for are
extracted. transformers' GGUF conversion is slow (a minute for a 150k vocabulary on a busy 2-core
machine), so each converted tokenizer is saved once with ``save_pretrained`` in a folder named after the
vocab file and the transformers version, and later runs load that folder.

Without PyPI the tests skip with the reason; with ``STEERSCALE_TEST_REQUIRE_TOKENIZERS=1`` (set in CI)
they fail instead, so a broken fetch cannot pass as a skip.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import pytest

SDIST = "llama-cpp-python==0.3.36"
SDIST_FILE = "llama_cpp_python-0.3.36.tar.gz"
MEMBER_DIR = "llama_cpp_python-0.3.36/vendor/llama.cpp/models/"


def cache_dir() -> Path:
    return Path(os.environ.get("STEERSCALE_TEST_CACHE") or "~/.cache/steerscale-tests").expanduser()


_FAILED: list[str] = []  # the reason, once a fetch failed in this process (later tests skip at once)


def _unavailable(reason: str):
    _FAILED[:1] = [reason]
    if os.environ.get("STEERSCALE_TEST_REQUIRE_TOKENIZERS") == "1":
        pytest.fail(f"real tokenizers required (STEERSCALE_TEST_REQUIRE_TOKENIZERS=1) but unavailable: {reason}")
    pytest.skip(f"real tokenizers unavailable: {reason}")


def sdist_path() -> Path:
    """The cached sdist, downloaded with pip on first use (into a temporary folder, then moved in place)."""
    root = cache_dir()
    path = root / SDIST_FILE
    if path.is_file():
        return path
    if _FAILED:
        _unavailable(_FAILED[0])
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=root, prefix="download-") as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", "--retries", "1",
               "--timeout", "20", "--disable-pip-version-check", "-q", "-d", tmp, SDIST]
        try:
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
        except (OSError, subprocess.TimeoutExpired) as e:
            _unavailable(f"`pip download {SDIST}` did not run ({type(e).__name__})")
        got = Path(tmp) / SDIST_FILE
        if r.returncode != 0 or not got.is_file():
            last = (r.stderr.strip().splitlines() or ["no output"])[-1][:200]
            _unavailable(f"`pip download {SDIST}` from PyPI failed: {last}")
        os.replace(got, path)
    return path


def vocab_file(name: str) -> Path:
    """``ggml-vocab-<name>.gguf`` extracted from the sdist into the cache folder."""
    out = cache_dir() / "vocab" / f"ggml-vocab-{name}.gguf"
    if out.is_file():
        return out
    src = sdist_path()
    out.parent.mkdir(parents=True, exist_ok=True)
    member = MEMBER_DIR + out.name
    with tarfile.open(src, "r:gz") as tar:
        try:
            f = tar.extractfile(member)
        except KeyError:
            raise FileNotFoundError(f"{src}: no member {member}") from None
        tmp = out.with_suffix(f".tmp{os.getpid()}")
        with open(tmp, "wb") as w:
            shutil.copyfileobj(f, w)
    os.replace(tmp, out)
    return out


def load_tokenizer(name: str):
    """The tokenizer of ``ggml-vocab-<name>.gguf`` as transformers loads it (converted once, then cached)."""
    import transformers
    from transformers import AutoTokenizer

    saved = cache_dir() / "converted" / f"{name}-transformers-{transformers.__version__}"
    if not (saved / "tokenizer_config.json").is_file():
        gguf = vocab_file(name)
        tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        saved.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=saved.parent, prefix=".conv-"))
        tok.save_pretrained(tmp)
        try:
            os.replace(tmp, saved)
        except OSError:  # another process saved it first
            shutil.rmtree(tmp, ignore_errors=True)
    return AutoTokenizer.from_pretrained(str(saved))
