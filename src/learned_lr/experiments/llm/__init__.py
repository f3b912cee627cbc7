"""LoRA fine-tuning of a real pretrained LLM (SmolLM2-135M) under LearnedLR and Hugging Face's schedules."""
