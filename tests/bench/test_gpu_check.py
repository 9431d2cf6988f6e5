"""CI runs the GPU check's reduced CPU mode: it builds, trains, scores and prints its table without a hub."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_gpu_check_cpu_mode_prints_its_table():
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    done = subprocess.run([sys.executable, "bench/gpu_check.py", "--cpu"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    table = lines[lines.index(next(line for line in lines if line.startswith("gpu_check (cpu"))):]
    rows = {line.split("  ")[0]: line for line in table[2:]}
    assert "3 steps in" in rows["(a) LoRA train, preset released"]
    assert float(rows["(a) tokens/s"].split()[-1]) > 0
    assert "MiB" in rows["(a) peak memory"]
    assert "pairs/s" in rows["(b) transformers direct"] and "32 SciFact pairs" in rows["(b) transformers direct"]
    assert "skipped" in rows["(b) vLLM direct"] and "skipped" in rows["(c) LoRA adapter in vLLM"]
    assert "True" in rows["scores in [0, 1]"]
