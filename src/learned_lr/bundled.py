"""The policies shipped in the package, by the name ``LearnedLR(policy=NAME)`` takes: the one list that the scheduler
and ``learned-lr bundle`` both read. It imports nothing heavy, so the command line's ``--help`` does not load torch.

    >>> from learned_lr.bundled import BUNDLED_POLICIES, resolve_policy
    >>> resolve_policy("cautious") == BUNDLED_POLICIES["cautious"], resolve_policy("bundled").name
    (True, 'default.safetensors')
"""

from __future__ import annotations

from pathlib import Path

# docs/results.md section 7 says how each was made, and each file's .json records its command. "default": on runs of
# 300-3,000 steps, for a model of under 6 layers six members (four draws, one with structure copies, one fitted to a
# low quantile counted 3x: "cautious-x3"; once: "cautious"), for one of 6 layers or more the same four with the low
# quantile one counted 12x; two and "general"'s under 300 steps, the LR rising at most 4x per 32 steps (faster on a
# short run near its start), zero-start layers out of its distance and gradient inputs; "grad-skip" without the fourth actor
# ("first-nonzero": those norms from their first non-zero one; "zero-start": from 1.0; "short-span": the distance too);
# "rise-limit-4" no faster rise, "three-draws" no limit, "two-draws" no third draw, "one-actor" its first.
BUNDLED_NAMES = ("default", "one-actor", "general", "dagger-k32", "mnist-bc", "two-draws", "three-draws", "rise-limit-4",
                 "short-span", "zero-start", "first-nonzero", "cautious", "grad-skip", "cautious-x3")
BUNDLED_POLICIES = {name: Path(__file__).parent / "policies" / f"{name}.safetensors" for name in BUNDLED_NAMES}
BUNDLED_POLICY = BUNDLED_POLICIES["default"]


def resolve_policy(policy: str | Path | None) -> Path:
    """A bundled policy's name (``BUNDLED_NAMES``; None or "bundled": "default") or a checkpoint path, as a path."""
    if policy is None or policy == "bundled":
        return BUNDLED_POLICY
    return BUNDLED_POLICIES.get(policy, Path(policy)) if isinstance(policy, str) else Path(policy)
