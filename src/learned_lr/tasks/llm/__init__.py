"""The LoRA trainee: SmolLM2-135M from its offline package, with LoRA adapters, and its offline text data."""
