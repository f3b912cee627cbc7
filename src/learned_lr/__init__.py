"""learned-lr: a learned learning-rate scheduler for PyTorch."""

__version__ = "0.1.0"
