"""Configs of the LoRA fine-tuning commands (finetune-llm, compare-llm, adapt-llm)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from learned_lr.settings import arg, check_choice, labeled_paths, parse_list, require, resolve_device

LLM_SCHEDULERS: tuple[str, ...] = ("learned", "linear", "cosine", "constant", "constant_with_warmup", "greedy")


@dataclass(frozen=True)
class LoRASettings:
    """What every LoRA fine-tuning run shares, whichever scheduler, batch size and seed it has."""

    policy: str = arg("bundled", "policy of the learned scheduler: a checkpoint path, or a bundled policy's name ('bundled' is LearnedLR's default)")
    lr: float = arg(2e-4, "base (peak) LR of AdamW (2e-4: the QLoRA paper's choice for small models)")
    steps: int = arg(80, "optimizer steps per run")
    warmup_ratio: float = arg(0.1, "warm-up fraction for linear, cosine and constant_with_warmup")
    lora_rank: int = arg(8, "LoRA rank (adapters on q_proj and v_proj, alpha = 2 x rank)")
    max_tokens: int = arg(64, "tokens per example at most")
    eval_examples: int = arg(64, "held-out examples for each of the two evaluation losses")
    max_grad_norm: float = arg(1.0, "gradient clipping, as Hugging Face Trainer's default; 0 turns it off")
    qlora: bool = arg(False, "QLoRA: the frozen base in 4-bit (needs a CUDA GPU and bitsandbytes)")
    device: str = arg("cpu", "cpu, cuda or auto", choices=("cpu", "cuda", "auto"))
    cache_dir: str = arg("", "float32 model cache; empty: $LEARNED_LR_CACHE or ~/.cache/learned-lr")

    def __post_init__(self) -> None:
        require(math.isfinite(self.lr) and self.lr > 0, "lr", f"must be a finite number > 0, got {self.lr}")
        require(self.steps >= 2, "steps", f"must be >= 2, got {self.steps}")
        require(0 <= self.warmup_ratio < 1, "warmup_ratio", f"must be in [0, 1), got {self.warmup_ratio}")
        require(self.lora_rank >= 1, "lora_rank", f"must be >= 1, got {self.lora_rank}")
        require(self.max_tokens >= 8, "max_tokens", f"must be >= 8, got {self.max_tokens}")
        require(self.eval_examples >= 1, "eval_examples", f"must be >= 1, got {self.eval_examples}")
        require(math.isfinite(self.max_grad_norm) and self.max_grad_norm >= 0, "max_grad_norm", f"must be >= 0, got {self.max_grad_norm}")
        check_choice(self.device, ("cpu", "cuda", "auto"), "device")

    @property
    def torch_device(self) -> str:
        """The device to train on (cuda for QLoRA); ``ConfigError`` if cuda is asked for and absent."""
        if self.qlora:
            return "cuda"  # bitsandbytes' 4-bit layers; require_qlora() says so if there is no GPU
        return resolve_device(self.device)


@dataclass(frozen=True)
class FinetuneLLMConfig:
    """`learned-lr finetune-llm`: LoRA-fine-tune SmolLM2-135M-Instruct offline under one LR scheduler."""

    settings: LoRASettings = field(default_factory=LoRASettings)
    scheduler: str = arg("learned", "LR scheduler: learned (LearnedLR) or one of Hugging Face's", choices=LLM_SCHEDULERS)
    batch_size: int = arg(4, "examples per step")
    seed: int = arg(0, "seed of the LoRA initialization and the data order")
    out: str = arg("runs/llm/run", "output folder: result.json and the LoRA adapter")

    def __post_init__(self) -> None:
        check_choice(self.scheduler, LLM_SCHEDULERS, "scheduler")
        require(self.batch_size >= 1, "batch_size", f"must be >= 1, got {self.batch_size}")


@dataclass(frozen=True)
class CompareLLMConfig:
    """`learned-lr compare-llm`: every scheduler x batch size x seed of the LoRA fine-tuning; table and figure."""

    settings: LoRASettings = field(default_factory=LoRASettings)
    schedulers: str = arg(",".join(LLM_SCHEDULERS), "comma-separated schedulers to compare")
    batch_sizes: str = arg("1,4", "comma-separated batch sizes")
    seeds: int = arg(3, "seeds per scheduler and batch size")
    policies: str = arg("", "more learned schedulers to compare: comma-separated LABEL=PATH policy checkpoints")
    work: str = arg("runs/llm-compare", "folder for the runs (a rerun skips finished ones)")
    out: str = arg("results/llm", "output folder for llm.md/json and llm.png")

    def __post_init__(self) -> None:
        parse_list(self.schedulers, "schedulers", str, LLM_SCHEDULERS)
        labels = [label for label, _ in self.policy_list]
        require(not set(labels) & set(LLM_SCHEDULERS), "policies", f"a policy label cannot be a scheduler name, got {self.policies}")
        sizes = parse_list(self.batch_sizes, "batch_sizes", int)
        require(all(s >= 1 for s in sizes), "batch_sizes", f"must all be >= 1, got {self.batch_sizes}")
        require(self.seeds >= 1, "seeds", f"must be >= 1, got {self.seeds}")

    @property
    def scheduler_list(self) -> list[str]:
        return parse_list(self.schedulers, "schedulers", str, LLM_SCHEDULERS)

    @property
    def batch_size_list(self) -> list[int]:
        return parse_list(self.batch_sizes, "batch_sizes", int)

    @property
    def policy_list(self) -> list[tuple[str, str]]:
        return labeled_paths(self.policies, "policies") if self.policies.strip() else []


@dataclass(frozen=True)
class AdaptLLMConfig:
    """`learned-lr adapt-llm`: fine-tune a policy by behavioral cloning on LoRA runs under a teacher schedule."""

    settings: LoRASettings = field(default_factory=LoRASettings)
    teacher: str = arg("cosine", "the schedule to imitate (one of Hugging Face's)", choices=LLM_SCHEDULERS[1:5])
    batch_sizes: str = arg("1,4", "comma-separated batch sizes of the teacher runs")
    runs_per_batch_size: int = arg(3, "teacher runs per batch size (seeds from 100; the last one is held out for validation)")
    epochs: int = arg(30, "passes over the examples")
    learning_rate: float = arg(1e-4, "Adam LR for the policy")
    batch_size: int = arg(64, "examples per policy update")
    seed: int = arg(0, "seed of the policy updates")
    out: str = arg("runs/llm-adapt", "folder for the teacher runs, adapt_log.csv and policy.safetensors")

    def __post_init__(self) -> None:
        check_choice(self.teacher, LLM_SCHEDULERS[1:5], "teacher")
        sizes = parse_list(self.batch_sizes, "batch_sizes", int)
        require(all(s >= 1 for s in sizes), "batch_sizes", f"must all be >= 1, got {self.batch_sizes}")
        require(self.runs_per_batch_size >= 1, "runs_per_batch_size", f"must be >= 1, got {self.runs_per_batch_size}")
        require(self.epochs >= 1, "epochs", f"must be >= 1, got {self.epochs}")
        require(math.isfinite(self.learning_rate) and self.learning_rate > 0, "learning_rate", f"must be > 0, got {self.learning_rate}")
        require(self.batch_size >= 1, "batch_size", f"must be >= 1, got {self.batch_size}")

    @property
    def batch_size_list(self) -> list[int]:
        return parse_list(self.batch_sizes, "batch_sizes", int)
