"""Experiments and reports over trained policies: evaluation, robustness, ablations, the BC report, the
pipelines (imitate, demo, robust-train), plots, and LoRA fine-tuning of a pretrained LLM (``llm``).

The top layer under the CLI: experiments import the library, the trainees and the training
algorithms, never the other way round (``tests/test_layers.py`` reads the imports).
"""
