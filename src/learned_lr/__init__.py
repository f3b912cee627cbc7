"""learned-lr: a learned learning-rate scheduler for PyTorch.

    >>> from learned_lr import LearnedLR
    >>> scheduler = LearnedLR(optimizer, total_steps=1000)   # doctest: +SKIP
"""

__version__ = "0.1.0"


def __getattr__(name: str):
    # Lazy, so `import learned_lr` stays light for the CLI's argument parsing.
    if name == "LearnedLR":
        from learned_lr.scheduler import LearnedLR

        return LearnedLR
    raise AttributeError(f"module 'learned_lr' has no attribute {name!r}")


__all__ = ["LearnedLR", "__version__"]
