"""learned-lr: a learned learning-rate scheduler for PyTorch.

    >>> from learned_lr import LearnedLR
    >>> scheduler = LearnedLR(optimizer, total_steps=1000, model=model)   # doctest: +SKIP

What a user needs is exported here: ``LearnedLR`` (the drop-in scheduler), ``load_policy`` (read a
policy checkpoint to pass as ``policy=``) and ``LayerGradNorms`` (the layer-wise gradient norms
the policy reads, for a loop that records them itself).
"""

__version__ = "0.1.0"

_EXPORTS = {
    "LearnedLR": "learned_lr.scheduler",
    "LayerGradNorms": "learned_lr.scheduler",
    "load_policy": "learned_lr.policy",
}


def __getattr__(name: str):
    # Lazy, so `import learned_lr` stays light (no torch) for the CLI's argument parsing.
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'learned_lr' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])


__all__ = ["LayerGradNorms", "LearnedLR", "load_policy", "__version__"]
