"""Optional: steerscale's llama.cpp control-vector export against llama.cpp itself (scripts/check_llama_cpp.py).

Skipped unless llama-cpp-python is importable (it is built from its sdist: a long compile, so neither CI nor
`make test` installs it). When present: the exported vector, applied by llama.cpp's own control-vector code to the
embedded SmolLM2 GGUF, changes the next-token logits the way steerscale's steering at the SAME layer does (and
clearly not the way the neighbouring layers do) — the off-by-one this guards against would steer the wrong layer.
"""

import importlib.util
import json
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(importlib.util.find_spec("llama_cpp") is None,
                                 reason="llama-cpp-python is not installed (optional; see docs/interop.md)")]

ROOT = Path(__file__).resolve().parents[2]


def test_llama_cpp_applies_the_exported_vector_at_the_same_layer(tmp_path):
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import check_llama_cpp
    finally:
        sys.path.pop(0)
    out = tmp_path / "check.json"
    rc = check_llama_cpp.main(["--layer", "15", "--multiplier", "8", "--json", str(out)])
    r = json.loads(out.read_text())
    same, below, above = (r["vs_steerscale_layer"][str(l)] for l in (15, 14, 16))
    assert rc == 0
    assert same["corr"] > 0.95 and same["rms_diff"] < r["unsteered_rms_diff"] * 1.5  # within quantisation noise
    assert same["rms_diff"] < 0.5 * min(below["rms_diff"], above["rms_diff"])
