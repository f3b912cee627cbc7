"""Summary statistics of per-seed results, and how the tables print them: one home for both.

Example:
    >>> stat = mean_ci([0.10, 0.12, 0.11])
    >>> format_stat(stat)
    '0.1100 ± 0.0248'
    >>> format_stat(mean_std([0.10, 0.12, float("nan")]), digits=3)
    '0.110'
"""

from __future__ import annotations

from typing import Sequence

import numpy as np


def mean_ci(values: Sequence[float], confidence: float = 0.95) -> dict[str, float]:
    """Mean and half-width (``ci``) of its two-sided t confidence interval; NaN, inf and None dropped."""
    from scipy import stats

    arr = np.asarray([v for v in values if v is not None and np.isfinite(v)], dtype=float)
    if len(arr) == 0:
        return {"mean": float("nan"), "ci": float("nan"), "n": 0}
    if len(arr) == 1:
        return {"mean": float(arr[0]), "ci": float("nan"), "n": 1}
    half = float(stats.t.ppf(0.5 + confidence / 2, len(arr) - 1) * arr.std(ddof=1) / np.sqrt(len(arr)))
    return {"mean": float(arr.mean()), "ci": half, "n": int(len(arr))}


def mean_std(values: Sequence[float]) -> dict[str, float]:
    """Mean and population standard deviation (``std``) over the non-NaN values; ``n`` counts the finite ones."""
    arr = np.asarray(values, dtype=float)
    return {"mean": float(np.nanmean(arr)), "std": float(np.nanstd(arr)), "n": int(np.isfinite(arr).sum())}


def format_stat(stat: dict, scale: float = 1.0, digits: int = 4, missing: str = "-") -> str:
    """'mean ± ci' of a ``mean_ci`` result (just the mean when the interval is undefined), scaled; ``missing`` when n = 0."""
    if stat["n"] == 0:
        return missing
    ci = f" ± {scale * stat['ci']:.{digits}f}" if np.isfinite(stat.get("ci", float("nan"))) else ""
    return f"{scale * stat['mean']:.{digits}f}{ci}"
