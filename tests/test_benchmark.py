"""`learned-lr benchmark`: the smoke suite runs every family x every contender; cells resume; bad input fails clearly."""

from __future__ import annotations

import json
import math

import pytest

from learned_lr.cli import main
from learned_lr.experiments import robustness
from learned_lr.experiments.benchmark import base_lr, contenders, markdown_report, run_benchmark, tuned_lr
from learned_lr.experiments.suites import CONTENDER_NAMES, DEFAULT_FAMILIES, FAMILY_NAMES, SUITES
from learned_lr.tasks.config import lr_grid_neighbor
from learned_lr.tasks.groups import make_run_group

# llm-lora loads SmolLM2-135M (the llm extra): it runs only when named, and its smoke run is tests/test_llm_family.py's.
FAMILIES = DEFAULT_FAMILIES


def test_smoke_suite_runs_every_family_and_contender(tmp_path, capsys):
    """The CI run of the whole ruler: every family x contender x multiplier, a table, the JSON and the figure."""
    work, out = tmp_path / "work", tmp_path / "out"
    assert main(["benchmark", "--suite", "smoke", "--work", str(work), "--out", str(out)]) == 0
    result = json.loads((out / "benchmark.json").read_text())
    assert result["families"] == list(FAMILIES)
    assert set(result["summary"]) == set(CONTENDER_NAMES)
    for family in FAMILIES:
        rows = result["per_family"][family]["rows"]
        assert set(rows) == set(CONTENDER_NAMES)
        for row in rows.values():
            for m in ("1", "10"):
                cell = row["per_multiplier"][m]
                assert cell["runs"] == 1 and cell["test_loss"]["mean"] is not None and cell["test_loss"]["mean"] > 0
        # The best tuned expert's gap at x1 is zero by definition; every tuned LR comes from the sweep grid.
        assert min(rows[name]["gap_at_1"] for name in ("linear-warmup", "cosine", "polynomial")) == pytest.approx(0.0, abs=1e-12)
        for tuning in result["tuning"][family].values():
            assert str(tuning["lr"]) in {str(float(k)) for k in tuning["grid"]} or f"{tuning['lr']:g}" in tuning["grid"]
    # The general policy's split and targets: summaries per split, and per family the policy's worst
    # case against the best fixed schedule's and the LR-free optimizers' at their default LR.
    assert set(result["summary_by_split"]) == {"training", "held-out"}
    assert set(result["summary_by_split"]["held-out"]["bundled"]) == {"kind", "mean_excess", "worst_excess", "mean_gap_at_1"}
    for family in FAMILIES:
        rows, target = result["per_family"][family]["rows"], result["targets"]["bundled"][family]
        best_schedule_worst = min(rows[n]["worst_loss"] for n in ("linear-warmup", "cosine", "polynomial", "constant"))
        best_lr_free = min(rows[n]["per_multiplier"]["1"]["test_loss"]["mean"] for n in ("prodigy", "dadapt-adam", "dog", "mechanic-sgd", "mechanic-adamw"))
        assert target["vs_best_schedule_worst"] == pytest.approx(rows["bundled"]["worst_loss"] / best_schedule_worst - 1)
        assert target["vs_best_lr_free_at_1"] == pytest.approx(rows["bundled"]["worst_loss"] / best_lr_free - 1)
        assert target["all_met"] == (target["vs_best_schedule_worst"] <= -0.2 and target["vs_best_lr_free_at_1"] <= 0.05 and target["gap_at_1"] <= 0.02)
        best_tuned = result["per_family"][family]["best_tuned_expert_loss"]
        assert best_tuned == pytest.approx(min(rows[n]["per_multiplier"]["1"]["test_loss"]["mean"] for n in ("linear-warmup", "cosine", "polynomial")))
        assert target["tuned_expert_vs_best_lr_free_at_1"] == pytest.approx(best_tuned / best_lr_free - 1)
    assert (out / "benchmark.png").stat().st_size > 10_000
    report = (out / "benchmark.md").read_text()
    assert "### char-lm" in report and "| prodigy |" in report and "| bundled | mnist-resnet18 | held-out |" in report
    # The LR-free optimizers get their default LR (1) x the multiplier; the schedules get the sweep's tuned LR x it.
    mlp = result["per_family"]["mnist-mlp"]["rows"]
    assert mlp["prodigy"]["per_multiplier"]["10"]["base_lr"] == pytest.approx(10.0)
    assert mlp["cosine"]["per_multiplier"]["10"]["base_lr"] == pytest.approx(10 * result["tuning"]["mnist-mlp"]["sgd"]["lr"])
    assert mlp["sgd-schedulefree"]["per_multiplier"]["1"]["base_lr"] == pytest.approx(result["tuning"]["mnist-mlp"]["sgd-schedulefree"]["lr"])
    capsys.readouterr()


def test_a_rerun_trains_nothing_and_a_changed_setting_reruns(tmp_path, monkeypatch, mnist):
    suite, work = SUITES["smoke"], tmp_path / "work"
    entrants = contenders(["cosine", "prodigy"])
    first = run_benchmark(suite, ["digits"], entrants, work, progress=False)
    calls = []
    real = robustness.run_scheduler
    monkeypatch.setattr(robustness, "run_scheduler", lambda *a, **k: calls.append(a) or real(*a, **k))
    again = run_benchmark(suite, ["digits"], entrants, work, progress=False)
    assert calls == [] and markdown_report(again) == markdown_report(first)
    run_benchmark(suite, ["digits"], entrants, work, seeds=2, progress=False)  # another setting: every cell reruns
    assert len(calls) == len(entrants) * len(suite.multipliers)
    # ... and is kept beside the first: back at the suite's seeds, nothing trains again.
    assert markdown_report(run_benchmark(suite, ["digits"], entrants, work, progress=False)) == markdown_report(first)
    assert len(calls) == len(entrants) * len(suite.multipliers)


def test_a_cell_saved_under_its_old_name_is_taken_over(tmp_path, monkeypatch):
    """Cells cached before the seeds were in their file's name are reused when their setting is the same."""
    suite, work = SUITES["smoke"], tmp_path / "work"
    entrants = contenders(["cosine"])
    first = run_benchmark(suite, ["digits"], entrants, work, progress=False)
    for cell in (work / "cells" / "digits").glob("*-1seeds.json"):
        cell.rename(cell.with_name(cell.name.replace("-1seeds", "")))
    calls = []
    real = robustness.run_scheduler
    monkeypatch.setattr(robustness, "run_scheduler", lambda *a, **k: calls.append(a) or real(*a, **k))
    assert markdown_report(run_benchmark(suite, ["digits"], entrants, work, progress=False)) == markdown_report(first)
    assert calls == [] and sorted(p.name for p in (work / "cells" / "digits").iterdir()) == ["cosine-x1-1seeds.json", "cosine-x10-1seeds.json"]


def test_workers_run_the_same_cells_in_processes(tmp_path, monkeypatch, mnist):
    """--workers 2: the same numbers as one process (up to float rounding: each worker has fewer
    threads), cached in the same files, so a sequential rerun trains nothing."""
    suite = SUITES["smoke"]
    entrants = contenders(["cosine", "prodigy"])
    alone = run_benchmark(suite, ["digits", "mnist-mlp"], entrants, tmp_path / "one", progress=False)
    pooled = run_benchmark(suite, ["digits", "mnist-mlp"], entrants, tmp_path / "two", progress=False, workers=2)
    assert pooled["tuning"] == alone["tuning"] or all(
        pooled["tuning"][f][o]["lr"] == alone["tuning"][f][o]["lr"] for f in alone["tuning"] for o in alone["tuning"][f])
    for family in ("digits", "mnist-mlp"):
        for label in ("cosine", "prodigy"):
            for m in ("1", "10"):
                ours = pooled["per_family"][family]["rows"][label]["per_multiplier"][m]
                theirs = alone["per_family"][family]["rows"][label]["per_multiplier"][m]
                assert ours["base_lr"] == theirs["base_lr"]
                assert ours["test_loss"]["mean"] == pytest.approx(theirs["test_loss"]["mean"], rel=1e-4)
    calls = []
    real = robustness.run_scheduler
    monkeypatch.setattr(robustness, "run_scheduler", lambda *a, **k: calls.append(a) or real(*a, **k))
    again = run_benchmark(suite, ["digits", "mnist-mlp"], entrants, tmp_path / "two", progress=False)
    assert calls == [] and markdown_report(again) == markdown_report(pooled)


def test_tuning_extends_its_grid_at_an_edge(tmp_path, monkeypatch):
    """A best LR at the grid's end is not taken at face value: the sweep tries the next grid point."""
    suite = SUITES["smoke"]  # digits grid for sgd: 0.1, 0.3; at 6 steps the highest LR wins
    tuning = tuned_lr(suite, "digits", "sgd", tmp_path, progress=False)
    assert len(tuning["grid"]) > len(suite.sweep_grid("sgd"))
    assert tuning["lr"] == min((float(k) for k in tuning["grid"]), key=lambda k: tuning["grid"][f"{k:g}"])
    assert [lr_grid_neighbor(x, up) for x, up in ((0.3, True), (0.3, False), (1.0, True), (3e-4, False))] == [1.0, 0.1, 3.0, 1e-4]


def test_base_lrs():
    cosine, dog, schedule_free = contenders(["cosine", "dog", "adamw-schedulefree"])
    tuned = {"adamw": 3e-3, "adamw-schedulefree": 1e-2}
    assert base_lr(cosine, 0.3, tuned, "adamw") == pytest.approx(9e-4)
    assert base_lr(dog, 0.3, tuned, "adamw") == pytest.approx(0.3)
    assert base_lr(schedule_free, 3.0, tuned, "adamw") == pytest.approx(0.03)


@pytest.mark.parametrize("argv, message", [
    (["--families", "cifar"], "--families: unknown value(s) cifar"),
    (["--contenders", "adagrad"], "--contenders: unknown value(s) adagrad"),
    (["--multipliers", "0.1,3"], "--multipliers: must include 1"),
    (["--multipliers", "1,inf"], "--multipliers: every multiplier must be finite"),
    (["--suite", "huge"], "invalid choice"),
    (["--workers", "0"], "--workers: must be >= 1"),
])
def test_bad_input_is_one_line(argv, message, tmp_path, capsys):
    try:
        code = main(["benchmark", "--work", str(tmp_path / "w"), "--out", str(tmp_path / "o"), *argv])
    except SystemExit as exc:  # argparse's own choices
        code = exc.code
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) <= 2 and message in err[-1]


def test_a_missing_policy_fails_before_any_training(tmp_path, capsys):
    code = main(["benchmark", "--suite", "smoke", "--contenders", "cosine", "--policies", f"mine={tmp_path / 'none.safetensors'}",
                 "--work", str(tmp_path / "w"), "--out", str(tmp_path / "o")])
    assert code == 1
    assert "none.safetensors" in capsys.readouterr().err
    assert not (tmp_path / "w" / "sweep").exists()


def test_chance_scoring_of_a_blown_up_run():
    from learned_lr.experiments.benchmark import _scored

    run = {"test_loss": 1e5, "diverged": False}
    assert _scored(run, math.log(10)) == {"test_loss": math.log(10), "diverged": True}
    assert _scored({"test_loss": 0.5, "diverged": False}, math.log(10))["test_loss"] == 0.5


def test_llm_lora_runs_only_when_named_and_a_missing_llm_extra_is_one_line(tmp_path, capsys, monkeypatch):
    from types import SimpleNamespace

    from learned_lr.experiments.suites import BenchmarkConfig
    from learned_lr.tasks.llm import model as llm_model

    assert BenchmarkConfig().family_list == list(DEFAULT_FAMILIES) and "llm-lora" not in DEFAULT_FAMILIES
    assert BenchmarkConfig(families="all").family_list == list(FAMILY_NAMES) and "llm-lora" in FAMILY_NAMES
    # As if peft were not installed (the llm extra): the first llm-lora run says what to install, in one line.
    real_find_spec = llm_model.importlib.util.find_spec
    fake_util = SimpleNamespace(find_spec=lambda name: None if name == "peft" else real_find_spec(name))
    monkeypatch.setattr(llm_model, "importlib", SimpleNamespace(util=fake_util))
    code = main(["benchmark", "--suite", "smoke", "--families", "llm-lora", "--contenders", "cosine",
                 "--work", str(tmp_path / "w"), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and err[-1].startswith("learned-lr benchmark: error: missing peft") and "learned-lr[llm]" in err[-1]
    assert not any("Traceback" in line for line in err)
    assert not (tmp_path / "o" / "benchmark.json").exists()


def test_the_full_suite_trainees_build_at_their_real_sizes_and_step(mnist):
    """The `full` suite is too long for a CPU test run; its trainees must still build at their sizes and batch
    sizes and take finite steps (every default family; llm-lora's 135M model is tested at small size in test_llm_family)."""
    suite = SUITES["full"]
    assert suite.seeds == 5 and suite.multipliers == (0.1, 0.3, 1.0, 3.0, 10.0)
    assert suite.families["mnist-resnet18"].task.width == 64 and suite.families["char-lm"].task.width == 128
    lrs = {"sgd": 0.02, "adam": 1e-3, "adamw": 1e-3}
    for family in (*DEFAULT_FAMILIES, "mnist1d-resnet"):
        setup = suite.families[family]
        group = make_run_group(setup.task, [0, 1], mnist, total_steps=setup.steps)
        losses = [group.step([lrs[setup.task.optimizer]] * 2).train_loss.tolist() for _ in range(3)]
        first, last = losses[0], losses[-1]
        assert all(math.isfinite(x) for x in first + last), (family, first, last)
        assert first[0] != first[1], family  # two seeds: two different initializations or batches


def test_the_held_out_1d_resnet_runs_only_when_named_and_is_scored_as_held_out(tmp_path, capsys):
    from learned_lr.experiments.suites import BenchmarkConfig

    assert "mnist1d-resnet" not in DEFAULT_FAMILIES and "mnist1d-resnet" in BenchmarkConfig(families="all").family_list
    out = tmp_path / "out"
    assert main(["benchmark", "--suite", "smoke", "--families", "mnist1d-resnet", "--contenders", "linear-warmup,prodigy,bundled",
                 "--work", str(tmp_path / "work"), "--out", str(out)]) == 0
    result = json.loads((out / "benchmark.json").read_text())
    assert result["families"] == ["mnist1d-resnet"] and set(result["summary_by_split"]) == {"held-out"}
    cell = result["per_family"]["mnist1d-resnet"]["rows"]["bundled"]["per_multiplier"]["1"]
    assert cell["runs"] == 1 and 0 < cell["test_loss"]["mean"] < 10
    assert "| bundled | mnist1d-resnet | held-out |" in (out / "benchmark.md").read_text()
    capsys.readouterr()
