"""`learned-lr demo --preset small`'s wall time, as a ratio against a reference run side by side.

Issue 20's target is 5 minutes on a slower laptop where the demo of commit 58ea57f (2026-11-29)
took 787 s. Machines (and one machine from day to day) differ by 2x, so this script runs that
commit's demo and today's one after the other on this machine, each in a fresh work folder, and
scales the slower laptop's 787 s by their ratio:

    estimate on the slower laptop = 787 s x (today's demo / reference demo, both timed here)

    python benchmarks/demo_time.py            # about 6 minutes on 2 cores

The reference runs from a `git worktree` of that commit with this venv's packages (its code needs
nothing newer); nothing else may run meanwhile (one torch job at a time on 2 cores).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REFERENCE_COMMIT = "58ea57f"
REFERENCE_SLOW_LAPTOP_S = 787.0  # issue 20: that commit's `make demo` pipeline on the slower laptop
TARGET_S = 300.0
ROOT = Path(__file__).resolve().parents[1]


def timed_demo(src: Path, folder: Path) -> dict[str, float]:
    """The stage times (``run_info.json``; "total" is the pipeline, as the issue's 787 s) of
    `python -m learned_lr.cli demo --preset small` run with ``src`` first on the path."""
    env = dict(os.environ, PYTHONPATH=str(src))
    command = [sys.executable, "-m", "learned_lr.cli", "demo", "--preset", "small", "--work", str(folder / "work"), "--out", str(folder / "out")]
    subprocess.run(command, cwd=src.parent, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return json.loads((folder / "out" / "run_info.json").read_text())["timings_s"]


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        tree = tmp / "reference"
        subprocess.run(["git", "worktree", "add", "--detach", "-f", str(tree), REFERENCE_COMMIT], cwd=ROOT, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            reference = timed_demo(tree / "src", tmp / "reference-run")
            today = timed_demo(ROOT / "src", tmp / "today-run")
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=ROOT, check=False)
    for name, stages in ((f"reference ({REFERENCE_COMMIT})", reference), ("today", today)):
        print(f"{name} demo here: " + ", ".join(f"{k} {v:.0f} s" for k, v in stages.items()))
    ratio = today["total"] / reference["total"]
    estimate = REFERENCE_SLOW_LAPTOP_S * ratio
    print(f"ratio {ratio:.3f} -> about {estimate:.0f} s on the slower laptop (target {TARGET_S:.0f} s: {'met' if estimate <= TARGET_S else 'not met'})")


if __name__ == "__main__":
    main()
