"""benchmarks/bench_gpu.py's dry run: every stage at a tiny shape on the CPU, the JSON written after each stage."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import bench_gpu  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")


def test_dry_run_runs_every_stage_and_fast_equals_naive(tmp_path):
    out = tmp_path / "gpu.json"
    t = time.time()
    assert bench_gpu.main(["--dry-run", "--out", str(out)]) == 0
    rec = json.loads(out.read_text())
    assert rec["dry_run"] and list(rec["stages"]) == bench_gpu.STAGES
    assert not [k for k, v in rec["stages"].items() if "error" in v or "skipped" in v]
    runs = rec["stages"]["sweep_7b"]["runs"]
    for k in ("fast_all_b8", "fast_all_b32", "fast_instruction_end_b8", "fast_instruction_end_b32"):
        assert runs[k]["max_abs_diff_vs_naive"] <= 0.15  # bfloat16 (engines/check.py CHECK_TOL)
        assert runs[k]["engine"]["layer_tokens"] > 0
    assert runs["screen_b8"]["work"]["backward_calls"] == runs["screen_b8"]["work"]["forward_calls"] == 1
    assert rec["stages"]["fp32_7b"]["tf32_off_fast_vs_naive"] <= 1e-4  # float32: fast = naive
    assert rec["stages"]["device_map"]["max_abs_diff_fast_vs_naive"] <= 0.15
    print(f"dry run: {time.time() - t:.1f} s")


def test_a_failing_stage_is_recorded_and_the_json_is_written_after_each(tmp_path, monkeypatch):
    def boom(self):
        raise RuntimeError("out of memory (simulated)")

    monkeypatch.setattr(bench_gpu.Bench, "stage_forward_7b", boom)
    out = tmp_path / "gpu.json"
    assert bench_gpu.main(["--dry-run", "--stages", "matmul,forward_7b,full_70b", "--out", str(out)]) == 1
    rec = json.loads(out.read_text())
    assert "out of memory" in rec["stages"]["forward_7b"]["error"]
    assert rec["stages"]["matmul"]["bf16_tflops"] > 0 and "forward" in rec["stages"]["full_70b"]
