"""bench/gpu_bench.py's CPU smoke mode runs and reports every figure (the GPU run is the same code, larger)."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_gpu_bench_quick_on_cpu(bootstrapped_policy):
    """On the suite's tiny policy (built once per session for the model tests), so the bench builds nothing."""
    r = subprocess.run([sys.executable, str(ROOT / "bench" / "gpu_bench.py"), "--device", "cpu", "--quick",
                        "--tiny-policy", bootstrapped_policy[0]], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    out = json.loads(r.stdout.strip().splitlines()[-1])
    tiny = out["tiny"]
    assert tiny["sampling"]["ours_tok_s"] > 0 and tiny["sampling"]["raw_tok_s"] > 0
    assert tiny["train"]["steps_s"] > 0 and tiny["train"]["mfu"] is None  # no peak for a CPU
    assert tiny["prm"]["responses_s"] > 0 and tiny["deterministic_cost"] > 0
    # CPU fp32: a rollout alone is its batched self, with and without --deterministic.
    assert tiny["repro"]["alone_eq_batched"] == "3/3" and tiny["repro_deterministic"]["alone_eq_batched"] == "3/3"
    assert "sampling ours" in r.stdout and "alone == batched 3/3" in r.stdout
