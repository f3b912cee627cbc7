"""Experiments and reports over trained policies: evaluation, robustness, ablations, the BC report, the
pipelines (imitate, demo, robust-train), plots, and LoRA fine-tuning of a pretrained LLM (``llm``).

The top layer under the CLI: experiments import the library, the trainees and the training
algorithms, never the other way round (``tests/test_layers.py`` reads the imports).
"""

from learned_lr.settings import require_train_extra

require_train_extra("learned_lr.experiments")
