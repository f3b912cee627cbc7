"""One LoRA fine-tuning run of SmolLM2-135M under one LR scheduler, with forgetting measured.

The loop is a plain PyTorch loop (AdamW, gradient clipping at 1.0 as in Hugging Face
``Trainer``), so every scheduler is stepped the way its library documents: Hugging Face's
``get_scheduler`` schedules with ``step()``, ``GreedyLR`` with the (smoothed) training loss, and
``LearnedLR`` with ``observe(train_loss=...)`` then ``step()``. The data order depends only on
the seed, so two schedulers with the same seed see the same batches.

Measured per run: held-out loss on unseen chatterbot questions (what fine-tuning is for) and
plain-text loss on FreeBSD fortunes (what the model knew before), each before and after;
forgetting = fortunes loss after - before. Smoothness = sum of the positive step-to-step
increments of the training loss (lower is smoother).

Example:
    >>> result = finetune(FinetuneLLMConfig(scheduler="cosine", out="runs/llm/cosine"))   # doctest: +SKIP
    >>> result["held_out_after"], result["forgetting"]
"""

from __future__ import annotations

import json
import math
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from learned_lr.bundled import resolve_policy
from learned_lr.experiments.llm.config import FinetuneLLMConfig, LoRASettings
from learned_lr.files import write_json
from learned_lr.observation import RunHistory
from learned_lr.policy import saved_policy_sha256
from learned_lr.scheduler import LayerGradNorms
from learned_lr.settings import ControlConfig, MissingExtraError
from learned_lr.tasks.llm import data as llm_data
from learned_lr.tasks.llm.model import add_lora, float32_copy, load_smollm2, pad_token_id, require_qlora

EVAL_BATCH = 16
DEMO_WINDOW = ControlConfig().window  # a recorded history's window (only its raw values are saved)
DATA_SEED = 0  # the train / held-out split and the evaluation samples are fixed across runs


@dataclass
class LLMData:
    train: list[tuple[list[int], list[int]]]
    held_out: list[tuple[list[int], list[int]]]
    forget: list[tuple[list[int], list[int]]]
    pad_id: int


def prepare_data(tokenizer, settings: LoRASettings) -> LLMData:
    """Tokenized train pairs, held-out pairs and fortunes (the latter two capped at eval_examples)."""
    train_pairs, held_pairs = llm_data.split_pairs(llm_data.instruction_pairs(), held_out_fraction=0.1, seed=DATA_SEED)
    rng = random.Random(DATA_SEED)
    held_pairs = rng.sample(held_pairs, min(settings.eval_examples, len(held_pairs)))
    texts = llm_data.fortunes()
    texts = rng.sample(texts, min(settings.eval_examples, len(texts)))
    pad_id = pad_token_id(tokenizer)
    return LLMData(
        train=llm_data.encode_pairs(tokenizer, train_pairs, settings.max_tokens),
        held_out=llm_data.encode_pairs(tokenizer, held_pairs, settings.max_tokens),
        forget=llm_data.encode_texts(tokenizer, texts, settings.max_tokens),
        pad_id=pad_id,
    )


def _to(batch: llm_data.Batch, device: str) -> dict[str, torch.Tensor]:
    return {"input_ids": batch.input_ids.to(device), "attention_mask": batch.attention_mask.to(device), "labels": batch.labels.to(device)}


@torch.no_grad()
def evaluation_loss(model, rows, pad_id: int, device: str) -> float:
    """Mean per-token loss over ``rows`` (weighted by each batch's target tokens)."""
    was_training = model.training
    model.eval()
    total, tokens = 0.0, 0
    for batch in llm_data.batches(rows, EVAL_BATCH, pad_id):
        loss = float(model(**_to(batch, device)).loss)
        total += loss * batch.target_tokens
        tokens += batch.target_tokens
    model.train(was_training)
    return total / max(tokens, 1)


def base_losses(settings: LoRASettings, progress: bool = True) -> dict[str, float]:
    """The pretrained model's held-out and fortunes losses (the "before" of every run)."""
    device = settings.torch_device
    model, tokenizer = load_smollm2(settings.cache_dir or None, device=device, four_bit=settings.qlora, progress=progress)
    data = prepare_data(tokenizer, settings)
    return {"held_out": evaluation_loss(model, data.held_out, data.pad_id, device),
            "forget": evaluation_loss(model, data.forget, data.pad_id, device)}


def make_scheduler(name: str, optimizer: torch.optim.Optimizer, settings: LoRASettings, model):
    """The scheduler ``name`` over ``optimizer`` for a run of ``settings.steps`` steps."""
    if name == "learned":
        from learned_lr.scheduler import LearnedLR

        return LearnedLR(optimizer, total_steps=settings.steps, policy=resolve_policy(settings.policy), model=model)
    from transformers import get_scheduler

    warmup = round(settings.warmup_ratio * settings.steps) if name in ("linear", "cosine", "constant_with_warmup") else 0
    if name == "greedy":
        try:
            from transformers.optimization import GreedyLR  # noqa: F401 - only to check it exists
        except ImportError as exc:
            raise MissingExtraError("the greedy scheduler needs transformers with GreedyLR (>= 5.x)") from exc
        # GreedyLR's bounds are absolute LRs; these give it the learned policy's range
        # ([0.001, 4] x base) so the two adaptive schedulers compare on equal terms.
        kwargs = {"smooth": True, "min_lr": settings.lr * 1e-3, "max_lr": settings.lr * 4.0}
        return get_scheduler("greedy", optimizer, scheduler_specific_kwargs=kwargs)
    return get_scheduler(name, optimizer, num_warmup_steps=warmup, num_training_steps=settings.steps)


def _step_scheduler(name: str, scheduler, loss: float) -> None:
    if name == "learned":
        scheduler.observe(train_loss=loss)
        scheduler.step()
    elif name == "greedy":
        scheduler.step(loss)
    else:
        scheduler.step()


def smoothness(losses: list[float]) -> float:
    """Sum of the positive step-to-step increments of a loss curve (0 for a monotone decrease)."""
    values = np.asarray(losses, dtype=np.float64)
    return float(np.clip(np.diff(values), 0, None).sum()) if len(values) > 1 else 0.0


def finetune(config: FinetuneLLMConfig, progress: bool = True, before: dict[str, float] | None = None, record_history: bool = False,
             label: str | None = None) -> dict:
    """Run one LoRA fine-tuning; write ``out/result.json`` and the adapter (``out/adapter``); return the result.

    ``record_history`` also keeps what a LearnedLR would have observed in this run (losses,
    layer-wise gradient norms, LRs) in ``out/history.npz``, whichever scheduler set the LRs:
    the demonstrations for adapting a policy to LoRA runs (``learned_lr.experiments.llm.adapt``).
    ``label`` names the scheduler in the result (e.g. a second learned policy); default: its name.
    """
    settings = config.settings
    if settings.qlora:
        require_qlora()
    device = settings.torch_device
    out = Path(config.out)
    float32_copy(settings.cache_dir or None, progress=progress)
    if before is None:
        before = base_losses(settings, progress=progress)
    model, tokenizer = load_smollm2(settings.cache_dir or None, device=device, four_bit=settings.qlora, progress=progress)
    data = prepare_data(tokenizer, settings)
    model = add_lora(model, rank=settings.lora_rank, alpha=2 * settings.lora_rank, seed=config.seed)
    model.train()
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=settings.lr, weight_decay=0.0)
    scheduler = make_scheduler(config.scheduler, optimizer, settings, model)
    history = RunHistory(settings.steps, base_lr=settings.lr, window=DEMO_WINDOW) if record_history else None
    read_norms = LayerGradNorms(optimizer, model) if record_history else None

    order_rng = np.random.default_rng(config.seed)
    order: list[int] = []
    lrs, losses = [], []
    diverged = False
    start = time.perf_counter()
    bar = tqdm(range(settings.steps), desc=f"LoRA {label or config.scheduler} bs{config.batch_size} seed{config.seed}", disable=not progress)
    for _ in bar:
        if len(order) < config.batch_size:  # a new pass over the data, reshuffled
            order.extend(order_rng.permutation(len(data.train)).tolist())
        picked, order = order[: config.batch_size], order[config.batch_size :]
        batch = llm_data.batches([data.train[i] for i in picked], config.batch_size, data.pad_id)[0]
        lrs.append(optimizer.param_groups[0]["lr"])
        loss = model(**_to(batch, device)).loss
        if not torch.isfinite(loss):
            diverged = True  # stop here: the adapter would only get worse; the run is reported as diverged
            break
        loss.backward()
        if settings.max_grad_norm > 0:
            torch.nn.utils.clip_grad_norm_(trainable, settings.max_grad_norm)
        optimizer.step()
        value = float(loss.detach())
        if history is not None:
            history.record(lrs[-1], value, value, read_norms())
        _step_scheduler(config.scheduler, scheduler, value)
        optimizer.zero_grad(set_to_none=True)
        losses.append(value)
        bar.set_postfix(loss=f"{value:.3f}", lr=f"{lrs[-1]:.2e}")
    train_seconds = time.perf_counter() - start

    after = {"held_out": math.nan, "forget": math.nan}
    if not diverged:
        after = {"held_out": evaluation_loss(model, data.held_out, data.pad_id, device),
                 "forget": evaluation_loss(model, data.forget, data.pad_id, device)}
        model.save_pretrained(out / "adapter")
    result = {
        "scheduler": label or config.scheduler, "batch_size": config.batch_size, "seed": config.seed,
        "settings": asdict(settings), "diverged": diverged, "steps_done": len(losses),
        "held_out_before": before["held_out"], "held_out_after": after["held_out"],
        "forget_before": before["forget"], "forget_after": after["forget"],
        "forgetting": after["forget"] - before["forget"],
        "smoothness": smoothness(losses), "train_seconds": train_seconds,
        "lrs": lrs, "train_losses": losses,
    }
    if config.scheduler == "learned":
        result["policy_sha256"] = learned_policy_sha256(settings)
    if history is not None:
        np.savez(out / "history.npz", **{k: np.asarray(v) for k, v in history.state().items()})
    write_json(out / "result.json", result)  # last: its presence marks a finished run
    return result


def learned_policy_sha256(settings: LoRASettings) -> str:
    """``policy_sha256`` of the policy the learned scheduler uses: a result saved for another policy
    (the bundled policy replaced, a policy retrained in place) is stale; one saved before the file
    was rewritten with the same decisions is not."""
    return saved_policy_sha256(resolve_policy(settings.policy))


def load_result(folder: str | Path) -> dict | None:
    """A finished run's result, or None if the run has not finished (or its file is unreadable)."""
    path = Path(folder) / "result.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None
