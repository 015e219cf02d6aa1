"""Run a Python snippet in a child process of the benchmarks, so that its peak RSS is its own."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def run_child(code: str, *args: str) -> tuple[dict, float]:
    """Run ``code`` with ``args`` (as ``sys.argv[1:]``) against this checkout; returns the JSON object its
    last stdout line holds and the wall seconds. Exits with the child's stderr if it fails."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=env, check=False)
    wall = time.perf_counter() - start
    if done.returncode:
        sys.exit(f"child failed ({done.returncode}):\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1]), wall
