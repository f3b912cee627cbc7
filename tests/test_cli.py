import csv
import json
import os
import subprocess
import sys

import pytest

from learned_lr.cli import main


def test_help_prints_for_the_program_and_every_command(capsys):
    from learned_lr.cli import COMMANDS

    for argv in [["--help"], *[[name, "--help"] for name in COMMANDS]]:
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
        assert exit_info.value.code == 0, argv
        assert "usage: learned-lr" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "95% CIs" in capsys.readouterr().out  # a literal % in a help text survives argparse


@pytest.mark.parametrize(
    "argv, flag",
    [
        (["train", "--task", "imagenet"], "--task"),
        (["train", "--schedule", "step"], "--schedule"),
        (["train", "--steps", "0"], "--steps"),
        (["train", "--steps", "-5"], "--steps"),
        (["train", "--lr", "-0.1"], "--lr"),
        (["train", "--lr", "nan"], "--lr"),
        (["train", "--optimizer", "lion"], "--optimizer"),
        (["sweep", "--lrs", "0.1,abc"], "--lrs"),
        (["collect", "--max-peak-lr", "inf"], "--max-peak-lr"),
        (["ppo", "--actor-lr", "inf"], "--actor-lr"),
        (["collect", "--action-noise", "inf"], "--action-noise"),
        (["train", "--batch-size", "1000000000"], "--batch-size"),
        (["imitate", "--mlp-seeds", "0"], "--mlp-seeds"),
        (["train", "--out", f"{__file__}/out"], "--out"),  # under a file: refused before any work
    ],
)
def test_bad_arguments_give_one_line_error_and_exit_2(argv, flag):
    proc = subprocess.run([sys.executable, "-m", "learned_lr.cli", *argv], capture_output=True, text=True)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert flag in lines[0] and "Traceback" not in proc.stderr


def test_train_writes_metrics_summary_and_plot(tmp_path, mnist):
    out = tmp_path / "run"
    assert main(["train", "--task", "mnist-mlp", "--schedule", "polynomial", "--steps", "150", "--seed", "1", "--hidden", "64", "--out", str(out)]) == 0
    rows = list(csv.DictReader((out / "metrics.csv").open()))
    assert len(rows) == 150 and float(rows[0]["lr"]) == pytest.approx(0.1)
    assert float(rows[-1]["lr"]) == pytest.approx(0.1 * (1 / 150) ** 2)
    assert float(rows[-1]["train_loss"]) < float(rows[0]["train_loss"])
    summary = json.loads((out / "summary.json").read_text())
    assert summary["steps_run"] == 150 and not summary["diverged"]
    assert summary["test_accuracy"] > 0.85
    assert (out / "curves.png").stat().st_size > 10_000


def test_diverging_run_stops_and_says_so(tmp_path, mnist, capsys):
    out = tmp_path / "boom"
    assert main(["train", "--schedule", "constant", "--lr", "50", "--steps", "200", "--hidden", "32", "--out", str(out)]) == 1
    assert "diverged" in capsys.readouterr().err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["diverged"] and summary["test_loss"] is None and summary["steps_run"] < 200


def test_evaluate_command_compares_a_policy_with_experts(tmp_path, mnist):
    from conftest import save_small_policy

    path = save_small_policy(tmp_path / "policy.safetensors")
    out = tmp_path / "eval"
    argv = ["evaluate", "--hidden", "32", "--steps", "60", "--seeds", "2", "--policies", f"random policy={path}", "--schedules", "cosine,constant", "--out", str(out)]
    assert main(argv) == 0
    rows = json.loads((out / "evaluation.json").read_text())
    assert [r["scheduler"] for r in rows] == ["random policy", "cosine", "constant"]
    assert all(r["test_loss"]["n"] == 2 and r["test_loss"]["ci"] > 0 for r in rows)
    assert (out / "evaluation.png").stat().st_size > 10_000
    assert main(["evaluate", "--policies", f"missing={tmp_path / 'nope.safetensors'}", "--out", str(out)]) == 1


def test_evaluate_and_sweep_continue_from_saved_runs(tmp_path, mnist, monkeypatch):
    """A rerun reads every finished scheduler (evaluate) and run (sweep) back instead of training
    again, and gives the same numbers; a changed policy file is evaluated again."""
    from conftest import save_small_policy

    import learned_lr.experiments.evaluate as evaluate

    path = save_small_policy(tmp_path / "policy.safetensors")
    out = tmp_path / "eval"
    argv = ["evaluate", "--hidden", "32", "--steps", "40", "--seeds", "2", "--policies", f"p={path}", "--schedules", "cosine", "--out", str(out)]
    sweep_argv = ["sweep", "--hidden", "32", "--steps", "30", "--lrs", "0.05,0.1", "--seeds", "1", "--out", str(tmp_path / "sweep")]
    assert main(argv) == 0 and main(sweep_argv) == 0
    first_rows = json.loads((out / "evaluation.json").read_text())
    first_sweep = json.loads((tmp_path / "sweep" / "sweep.json").read_text())

    ran = []
    real_outcome = evaluate._scheduler_outcome
    monkeypatch.setattr(evaluate, "_scheduler_outcome", lambda spec, *a, **k: ran.append(spec.label) or real_outcome(spec, *a, **k))
    monkeypatch.setattr(evaluate, "final_val_loss", lambda *a, **k: pytest.fail("the sweep trained again"))
    assert main(argv) == 0 and main(sweep_argv) == 0
    assert ran == []
    assert json.loads((out / "evaluation.json").read_text()) == first_rows
    assert json.loads((tmp_path / "sweep" / "sweep.json").read_text()) == first_sweep

    save_small_policy(path, seed=1)  # the policy changed in place: its result is stale
    assert main(argv) == 0
    assert ran == ["p"]


def test_robustness_command_writes_table_and_figure(tmp_path, mnist, capsys):
    from conftest import save_small_policy

    path = save_small_policy(tmp_path / "policy.safetensors")
    out = tmp_path / "rob"
    argv = ["robustness", "--hidden", "32", "--steps", "40", "--lrs", "0.05,0.2", "--core-lrs", "0.05,0.2", "--seeds", "2",
            "--schedules", "cosine", "--baselines", "plateau", "--policies", f"tiny={path}", "--work", str(tmp_path / "work"), "--out", str(out)]
    assert main(argv) == 0
    summary = json.loads((out / "robustness.json").read_text())
    assert [r["label"] for r in summary["rows"]] == ["cosine", "plateau", "tiny"]
    assert all(r["per_lr"]["0.2"]["test_loss"]["n"] == 2 for r in summary["rows"])
    assert "tiny: worst case" in (out / "robustness.md").read_text()
    assert (out / "robustness.png").stat().st_size > 10_000
    capsys.readouterr()
    missing = ["--policies", f"x={tmp_path / 'missing.safetensors'}", "--work", str(tmp_path / "w2"), "--out", str(out)]
    assert main(argv[:-6] + missing) == 1  # fails before any training, naming the file
    assert "missing.safetensors" in capsys.readouterr().err


def test_a_folder_in_use_by_another_command_is_refused_in_one_line(tmp_path, capsys):
    """Two runs on one folder would mix or lose results: the second stops at once, exit 2; the lock goes with the run."""

    folder = tmp_path / "demos"
    folder.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", (
        "import fcntl, sys, time; f = open(sys.argv[1], 'a+'); fcntl.flock(f, fcntl.LOCK_EX); f.write('4242'); f.flush();"
        "print('locked', flush=True); time.sleep(60)"), str(folder / ".learned-lr.lock")], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        code = main(["collect", "--out", str(folder), "--runs-per-setting", "1", "--total-steps", "20"])
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 2 and len(err) == 1
        assert "another learned-lr command (pid 4242) is using the folder" in err[0] and "--out" in err[0]
    finally:
        holder.kill()
        holder.wait()
    # The holder is gone (killed, as a crash would): the folder is free again.
    from learned_lr.cli.flags import folder_locks
    from learned_lr.experiments.suites import BenchmarkConfig

    stale = folder / "sub" / ".policy.safetensors.999999999.tmp"  # left by a writer killed mid-save
    stale.parent.mkdir()
    stale.write_bytes(b"x" * 1000)
    live = folder / f".log.csv.{os.getpid()}.tmp"  # a live writer's: never touched
    live.write_text("")
    with folder_locks(BenchmarkConfig(work=str(folder), out=str(folder))):  # one folder given twice is locked once
        assert not stale.exists() and live.exists()


def test_explain_plots_a_real_runs_decisions(tmp_path, capsys):
    out = tmp_path / "explain"
    assert main(["explain", "--steps", "80", "--hidden", "32", "--out", str(out)]) == 0
    result = json.loads((out / "decisions.json").read_text())
    assert len(result["lrs"]) == len(result["train_loss"]) == 80
    steps = [d["step"] for d in result["decisions"]]
    assert steps[0] == 0 and steps == sorted(steps) and len(steps) >= 80 // result["decision_interval"]
    assert result["decisions"][0]["seen"] is None and "log_train_loss" in result["decisions"][-1]["seen"]
    # The LR each step used is the decisions' ramp: a decision's LR is reached at the end of its block.
    assert all(0 < lr <= 4 * result["base_lr"] for lr in result["lrs"])
    assert (out / "decisions.png").stat().st_size > 10_000
    # The default's dense start: every 16 steps over the first 128 (an 80-step run is all start), said as such.
    assert steps == [0, 1, 17, 33, 49, 65] and result["cadence"] == "every 16 steps over the first 128, then every 32"
    # Who decided: an 80-step run is under the default's 300-step gate, so its three short-run actors did.
    assert result["deciders"] == "3 actors deciding together (the policy's part for runs under 300 steps)"
    # A run of 300 steps or more: its four long-run actors, the cautious one listed three times (one module, said once) on a
    # model under 6 layers, twelve times on one of 6 layers or more (the structure gate).
    from learned_lr.bundled import BUNDLED_POLICIES
    from learned_lr.experiments.explain import deciders
    from learned_lr.policy import load_policy

    long_side = "(the policy's part for runs of or over 300 steps)"
    default = load_policy(BUNDLED_POLICIES["default"]).actor
    assert deciders(default, 300) == f"4 actors deciding together, one counted 3 times {long_side} (its side for models under 6 layers)"
    assert deciders(default, 300, (8, 0)) == f"4 actors deciding together, one counted 12 times {long_side} (its side for models of 6 layers or more)"
    assert deciders(load_policy(BUNDLED_POLICIES["cautious-x3"]).actor, 300) == f"4 actors deciding together, one counted 3 times {long_side}"
    assert deciders(load_policy(BUNDLED_POLICIES["cautious"]).actor, 300) == f"4 actors deciding together {long_side}"
    # What the rise limit held back is counted in the summary (and marked in the figure).
    from learned_lr.control import held_back

    assert all(d["asked_factor"] >= d["lr_factor"] * (1 - 1e-9) for d in result["decisions"]) and result["max_lr_rise"] == 4
    held = sum(map(held_back, result["decisions"]))
    assert "6 decisions by 3 actors deciding together (the policy's part for runs under 300 steps) (every 16 steps over the first 128, " \
        f"then every 32, {held} held back by the rise limit (at most 4x per 32 steps; per 10 steps from step 17, while the weights " \
        "are within 0.05 of their start))" in capsys.readouterr().out


def test_the_python_stages_take_the_same_lock_and_it_is_reentrant(tmp_path):
    """collect/bc/ppo called from Python lock their folder too (the CLI's lock is the same one, taken again)."""
    from learned_lr.files import FolderInUseError, folder_lock
    from learned_lr.training.bc import collect_demonstrations, train_bc
    from learned_lr.training.config import BCConfig, CollectConfig

    folder = tmp_path / "demos"
    try_lock = [sys.executable, "-c", "import fcntl, sys; fcntl.flock(open(sys.argv[1], 'a+'), fcntl.LOCK_EX | fcntl.LOCK_NB)",
                str(folder / ".learned-lr.lock")]
    with folder_lock(folder), folder_lock(folder):  # a command holds it and the stage it calls takes it again
        assert subprocess.run(try_lock, stderr=subprocess.DEVNULL).returncode != 0  # held against other processes
    assert subprocess.run(try_lock).returncode == 0  # released when its last holder leaves
    holder = subprocess.Popen([sys.executable, "-c", (
        "import fcntl, sys, time; f = open(sys.argv[1], 'a+'); fcntl.flock(f, fcntl.LOCK_EX); f.truncate(0); f.write('4242'); f.flush();"
        "print('locked', flush=True); time.sleep(60)"), str(folder / ".learned-lr.lock")], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(FolderInUseError, match="pid 4242"):
            collect_demonstrations(CollectConfig(out=str(folder)))
        with pytest.raises(FolderInUseError, match="pid 4242"):
            train_bc(BCConfig(demos=str(folder), out=str(folder)))
    finally:
        holder.kill()
        holder.wait()


def test_every_resumable_command_says_in_its_help_what_a_rerun_reuses(capsys):
    from learned_lr.cli import COMMANDS, ON_RERUN

    assert set(ON_RERUN) <= set(COMMANDS)
    for command in ("collect", "bc", "ppo", "benchmark", "general-train", "robustness"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        text = " ".join(capsys.readouterr().out.split())
        assert "On a rerun into the same folder:" in text, command
    assert "another --epochs or other demonstrations train from the start" in " ".join(ON_RERUN["bc"].split())


def _decision_steps(policy, total_steps: int) -> list[int]:
    """The steps at which LearnedLR running ``policy`` decided, over a small run."""
    import torch

    from learned_lr.scheduler import LearnedLR

    model = torch.nn.Linear(3, 1)
    scheduler = LearnedLR(torch.optim.SGD(model.parameters(), lr=0.1), total_steps=total_steps, policy=str(policy), model=model)
    for _ in range(total_steps):
        model(torch.ones(1, 3)).sum().backward()
        scheduler.optimizer.step()
        scheduler.step(train_loss=1.0)
    return [d["step"] for d in scheduler.decisions()]


def test_bundle_out_writes_the_actor_at_another_decision_interval_and_leaves_the_package_alone(tmp_path, capsys):
    """`learned-lr bundle --decision-interval K --destination PATH`: the same actor (same weights), deciding every K
    steps, written where asked; the K it was trained at is kept; bad values are refused in one line."""
    import torch
    from conftest import save_small_policy

    from learned_lr.bundled import BUNDLED_POLICIES
    from learned_lr.policy import load_policy, policy_sha256

    source = save_small_policy(tmp_path / "policy.safetensors", window=64, decision_interval=4)
    assert all(path.is_file() for path in BUNDLED_POLICIES.values())  # every name the bundle command can write is shipped
    shipped = {name: path.read_bytes() for name, path in BUNDLED_POLICIES.items()}
    out = tmp_path / "k8.safetensors"
    assert main(["bundle", "--policy", str(source), "--decision-interval", "8", "--destination", str(out), "--produced-by", "a test"]) == 0
    original, retargeted = load_policy(source), load_policy(out)
    assert retargeted.control_config.decision_interval == 8 and retargeted.meta["trained_decision_interval"] == 4
    assert retargeted.meta["produced_by"] == "a test" and retargeted.meta["bundled_from"] == str(source)
    for name, tensor in original.actor.state_dict().items():
        assert torch.equal(tensor, retargeted.actor.state_dict()[name])
    assert policy_sha256(original) != policy_sha256(retargeted)  # a benchmark cell of one is never reused for the other
    assert {name: path.read_bytes() for name, path in BUNDLED_POLICIES.items()} == shipped
    assert _decision_steps(out, 40) == [0, 1, 9, 17, 25, 33]
    # A bundled name is a valid source; 0 keeps the trained K.
    same = tmp_path / "same.safetensors"
    assert main(["bundle", "--policy", "mnist-bc", "--destination", str(same)]) == 0
    assert load_policy(same).control_config.decision_interval == 32 and "trained_decision_interval" not in load_policy(same).meta
    assert load_policy(same).meta["bundled_from"] == "the bundled policy 'mnist-bc' (src/learned_lr/policies/mnist-bc.safetensors)"
    capsys.readouterr()
    assert main(["bundle", "--policy", str(source), "--decision-interval", "-1", "--destination", str(out)]) == 2
    assert "--decision-interval" in capsys.readouterr().err
    assert main(["bundle", "--policy", str(source), "--destination", str(tmp_path / "policy.pt")]) == 2
    assert "--destination" in capsys.readouterr().err


def _small_mse_run_decisions(policy: str, lr: float, steps: int) -> list[dict]:
    """``LearnedLR.decisions()`` of a seeded ``steps``-step SGD run of a small MLP on random regression data."""
    import torch

    from learned_lr.scheduler import LearnedLR

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(5, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1))
    x, y = torch.randn(64, 5), torch.randn(64, 1)
    scheduler = LearnedLR(torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9), total_steps=steps, policy=policy, model=model)
    for _ in range(steps):
        scheduler.optimizer.zero_grad()
        loss = torch.nn.functional.mse_loss(model(x), y)
        loss.backward()
        scheduler.optimizer.step()
        scheduler.step(train_loss=loss.item())
    return scheduler.decisions()


def test_bundle_with_a_rise_limit_runs_the_same_actor_rising_at_most_that_much_per_decision(tmp_path, capsys):
    """`learned-lr bundle --max-lr-rise R`: the same weights under the limit (recorded, with what it was trained
    under); in a run no decision raises the LR more than R-fold over its block, and the unlimited actor does."""
    import numpy as np

    from learned_lr.policy import load_policy

    def rises(policy: str) -> np.ndarray:
        factors = np.array([d["lr_factor"] for d in _small_mse_run_decisions(policy, lr=0.01, steps=300)])
        return factors[1:] / factors[:-1]

    out = tmp_path / "rise4.safetensors"
    assert main(["bundle", "--policy", "general", "--max-lr-rise", "4", "--destination", str(out)]) == 0
    limited = load_policy(out)
    assert limited.control_config.max_lr_rise == 4.0 and limited.meta["trained_max_lr_rise"] == 0.0
    assert limited.control_config.decision_interval == 16 and "trained_decision_interval" not in limited.meta
    assert rises("general").max() > 4.5  # the actor left alone rises further than the limit in this run
    limited_rises = rises(str(out))
    assert 3.9 < limited_rises.max() <= 4.0 + 1e-6  # it reaches the limit, never beyond
    capsys.readouterr()
    assert main(["bundle", "--policy", "general", "--max-lr-rise", "0.5", "--destination", str(out)]) == 2
    assert "--max-lr-rise" in capsys.readouterr().err


def test_bundle_with_a_rise_span_lets_a_short_run_rise_faster_within_its_span(tmp_path, capsys):
    """`learned-lr bundle --rise-span-fraction F`: a 100-step run under "rise-limit-4"'s limit of 4 may rise 4x per
    100*F steps (and does, where the policy asks for it); lifting the limit drops the span with it."""
    import numpy as np

    from learned_lr.policy import load_policy

    def decisions(policy: str) -> list[dict]:
        return _small_mse_run_decisions(policy, lr=0.001, steps=100)

    def log_rise_per_step(made: list[dict]) -> np.ndarray:
        steps, factors = np.array([d["step"] for d in made]), np.array([d["lr_factor"] for d in made])
        return np.log(factors[2:] / factors[1:-1]) / np.diff(steps[1:])  # from step 1 on: whole blocks

    out = tmp_path / "span.safetensors"
    assert main(["bundle", "--policy", "rise-limit-4", "--rise-span-fraction", "0.125", "--destination", str(out)]) == 0
    spanned = load_policy(out)
    assert (spanned.control_config.max_lr_rise, spanned.control_config.rise_span_fraction) == (4.0, 0.125)
    assert log_rise_per_step(decisions("rise-limit-4")).max() <= np.log(4) / 32 + 1e-9  # per 32 steps
    fast = log_rise_per_step(decisions(str(out)))
    assert np.log(4) / 32 * 1.5 < fast.max() <= np.log(4) / 12.5 + 1e-9  # per 12.5 steps, and it used the room
    lifted = tmp_path / "lifted.safetensors"
    assert main(["bundle", "--policy", str(out), "--max-lr-rise", "0", "--destination", str(lifted)]) == 0
    assert (load_policy(lifted).control_config.max_lr_rise, load_policy(lifted).control_config.rise_span_fraction) == (0.0, 0.0)
    capsys.readouterr()
    assert main(["bundle", "--policy", "default", "--rise-span-fraction", "2", "--destination", str(out)]) == 2
    assert "--rise-span-fraction" in capsys.readouterr().err


def test_bundle_with_a_cooldown_decays_a_short_runs_end_without_calling_it_held_back(tmp_path, capsys):
    """`learned-lr bundle --cooldown-fraction C --cooldown-max-steps N`: the default's decisions on a 100-step run are
    the same until its last C of steps, then decayed towards zero (and not counted as held back by the rise limit); a
    run of N steps or more is untouched; the two flags go together."""
    import numpy as np

    from learned_lr.control import held_back
    from learned_lr.policy import load_policy

    out = tmp_path / "cool.safetensors"
    assert main(["bundle", "--policy", "default", "--cooldown-fraction", "0.2", "--cooldown-max-steps", "300", "--destination", str(out)]) == 0
    control = load_policy(out).control_config
    assert (control.cooldown_fraction, control.cooldown_max_steps, control.max_lr_rise) == (0.2, 300, 4.0)
    plain, cooled = _small_mse_run_decisions("default", lr=0.01, steps=100), _small_mse_run_decisions(str(out), lr=0.01, steps=100)
    steps = [d["step"] for d in plain]
    assert steps == [d["step"] for d in cooled] == [0, 1, 17, 33, 49, 65, 81, 97]
    # up to the decision at step 81 (which has read steps 0-80, all at the policy's own LR) each sets what the policy did,
    # times the cooldown at its block's last step: 1 up to step 80, then (100 - t) / 20
    decay = [min(1.0, (100 - (end - 1)) / 20) for end in steps[1:8]]
    np.testing.assert_allclose([d["lr_factor"] for d in cooled[:7]], [d["lr_factor"] * m for d, m in zip(plain[:7], decay)])
    assert decay[-2:] == [1.0, 0.2] and cooled[-1]["lr_factor"] < plain[-1]["lr_factor"] / 2   # the last block ends at 1/20 (or the bound)
    assert [held_back(d) for d in cooled[:7]] == [held_back(d) for d in plain[:7]]   # the decay is not the rise limit
    long_plain, long_cooled = (_small_mse_run_decisions(p, lr=0.01, steps=300) for p in ("default", str(out)))
    assert [d["lr_factor"] for d in long_cooled] == [d["lr_factor"] for d in long_plain]
    capsys.readouterr()
    assert main(["bundle", "--policy", "default", "--cooldown-fraction", "0.2", "--destination", str(out)]) == 2
    assert "--cooldown-max-steps" in capsys.readouterr().err


def test_bundle_after_loss_rise_sets_the_hold_keeps_the_rest_and_refuses_a_rise(tmp_path, capsys):
    """`learned-lr bundle --after-loss-rise R`: recorded in the bundle's control with everything else as the policy had it,
    worded by `explain`; a value above 1 (a rise) is refused with the flag named."""
    import dataclasses

    from learned_lr.bundled import resolve_policy
    from learned_lr.experiments.explain import rise_limit_words
    from learned_lr.policy import load_policy

    out = tmp_path / "hold.safetensors"
    assert main(["bundle", "--policy", "default", "--after-loss-rise", "1", "--destination", str(out)]) == 0
    held, default = load_policy(out).control_config, load_policy(resolve_policy("default")).control_config
    assert held == dataclasses.replace(default, after_loss_rise=1.0)
    assert rise_limit_words(held, 1000) == "at most 4x per 32 steps; after a block whose loss rose, no rise"
    capsys.readouterr()
    assert main(["bundle", "--policy", "default", "--after-loss-rise", "2", "--destination", str(out)]) == 2
    assert "--after-loss-rise" in capsys.readouterr().err


def test_bundle_loss_over_lowest_sets_the_brake_keeps_the_rest_and_refuses_a_ratio_of_one(tmp_path, capsys):
    """`learned-lr bundle --loss-over-lowest B --over-lowest-factor R`: recorded in the bundle's control with everything
    else as the policy had it, worded by `explain`; a ratio of 1 or less (every run) is refused with the flag named."""
    import dataclasses

    from learned_lr.bundled import resolve_policy
    from learned_lr.experiments.explain import rise_limit_words
    from learned_lr.policy import load_policy

    out = tmp_path / "brake.safetensors"
    assert main(["bundle", "--policy", "default", "--loss-over-lowest", "1.5", "--over-lowest-factor", "0.5", "--destination", str(out)]) == 0
    braked, default = load_policy(out).control_config, load_policy(resolve_policy("default")).control_config
    assert braked == dataclasses.replace(default, loss_over_lowest=1.5, over_lowest_factor=0.5)
    assert rise_limit_words(braked, 1000) == "at most 4x per 32 steps; while the loss is above 1.5x its lowest block, at most 0.5x"
    capsys.readouterr()
    assert main(["bundle", "--policy", "default", "--loss-over-lowest", "1", "--destination", str(out)]) == 2
    assert "--loss-over-lowest" in capsys.readouterr().err
    shallow = tmp_path / "brake-below-6.safetensors"
    assert main(["bundle", "--policy", str(out), "--over-lowest-below-layers", "6", "--destination", str(shallow)]) == 0
    assert load_policy(shallow).control_config == dataclasses.replace(braked, over_lowest_below_layers=6)
    capsys.readouterr()
    assert main(["bundle", "--policy", str(out), "--over-lowest-below-layers", "1", "--destination", str(shallow)]) == 2
    assert "--over-lowest-below-layers" in capsys.readouterr().err


def test_bundle_distance_skips_zero_start_reads_a_zero_initialised_layer_as_no_distance_not_a_blow_up(tmp_path, capsys):
    """`learned-lr bundle --distance-skips-zero-start 1`: on a model whose last layer starts at zero (as LoRA's B), the
    default before the twenty-second session ("short-span") reads that layer as blown up (+10) from the first step;
    bundled with the skip it is "zero-start", hash for hash, which reads the other layer alone, as today's default does. A policy that does
    not read the distance is refused with the flag named."""
    import torch

    from learned_lr.bundled import resolve_policy
    from learned_lr.policy import load_policy, policy_sha256
    from learned_lr.scheduler import LearnedLR

    out = tmp_path / "skip.safetensors"
    assert main(["bundle", "--policy", "short-span", "--distance-skips-zero-start", "1", "--destination", str(out)]) == 0
    assert load_policy(out).control_config.distance_skips_zero_start
    assert policy_sha256(load_policy(out)) == policy_sha256(load_policy(resolve_policy("zero-start"))) != policy_sha256(load_policy(resolve_policy("short-span")))

    def seen_at_step_17(policy: str) -> dict:
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Linear(5, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1))
        torch.nn.init.zeros_(model[2].weight), torch.nn.init.zeros_(model[2].bias)
        x, y = torch.randn(64, 5), torch.randn(64, 1)
        scheduler = LearnedLR(torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9), total_steps=100, policy=policy, model=model)
        for _ in range(18):
            scheduler.optimizer.zero_grad()
            loss = torch.nn.functional.mse_loss(model(x), y)
            loss.backward()
            scheduler.optimizer.step()
            scheduler.step(train_loss=loss.item())
        return next(d["seen"] for d in scheduler.decisions() if d["step"] == 17)

    as_blow_up, skipped = seen_at_step_17("short-span"), seen_at_step_17("default")
    assert skipped["init_distance_min"] == skipped["init_distance_mean"] == skipped["init_distance_max"] < -3.0  # the first layer's
    # (the two runs' LRs differ from the first decision on, which read step 0's distances: compare within a run)
    assert as_blow_up["init_distance_max"] == 10.0 and as_blow_up["init_distance_min"] < -3.0
    assert as_blow_up["init_distance_mean"] == pytest.approx((as_blow_up["init_distance_min"] + 10.0) / 2, rel=1e-5)  # two layers
    capsys.readouterr()
    assert main(["bundle", "--policy", "mnist-bc", "--distance-skips-zero-start", "1", "--destination", str(out)]) == 1   # (the policy's)
    assert "--distance-skips-zero-start" in capsys.readouterr().err


def test_bundle_grad_norms_from_first_nonzero_is_recorded_and_a_bad_value_refused(tmp_path, capsys):
    """`learned-lr bundle --grad-norms-from-first-nonzero 1`: in the bundle's control, everything else as the policy had it
    ("zero-start" with it is "first-nonzero", the twenty-second session's default); `--grad-norms-skip-zero-start 1` in its
    place makes "grad-skip" (the default of the twenty-third to twenty-seventh sessions), hash for hash, and with it still
    on is refused, the flag named."""
    import dataclasses

    from learned_lr.bundled import resolve_policy
    from learned_lr.policy import load_policy, policy_sha256

    out = tmp_path / "norms.safetensors"
    assert main(["bundle", "--policy", "zero-start", "--grad-norms-from-first-nonzero", "1", "--destination", str(out)]) == 0
    before, first = (load_policy(resolve_policy(name)).control_config for name in ("zero-start", "first-nonzero"))
    assert load_policy(out).control_config == dataclasses.replace(before, grad_norms_from_first_nonzero=True) == first
    assert main(["bundle", "--policy", "first-nonzero", "--grad-norms-from-first-nonzero", "0", "--grad-norms-skip-zero-start", "1",
                 "--destination", str(out)]) == 0
    skip = load_policy(resolve_policy("grad-skip"))
    assert policy_sha256(load_policy(out)) == policy_sha256(skip) and skip.control_config.grad_norms_skip_zero_start
    assert dataclasses.replace(before, grad_norms_skip_zero_start=True) == skip.control_config == load_policy(resolve_policy("default")).control_config
    capsys.readouterr()
    assert main(["bundle", "--policy", "first-nonzero", "--grad-norms-skip-zero-start", "1", "--destination", str(out)]) == 1  # (with the policy's)
    assert "--grad-norms-skip-zero-start" in capsys.readouterr().err
    assert main(["bundle", "--policy", "default", "--grad-norms-from-first-nonzero", "2", "--destination", str(out)]) == 2
    assert "--grad-norms-from-first-nonzero" in capsys.readouterr().err


def test_bundle_with_a_dense_start_decides_every_few_steps_at_the_start_of_a_run_then_every_k(tmp_path, capsys):
    from learned_lr.policy import load_policy

    out = tmp_path / "start.safetensors"
    assert main(["bundle", "--policy", "default", "--start-decision-interval", "16", "--start-steps", "64", "--destination", str(out)]) == 0
    control = load_policy(out).control_config
    assert (control.decision_interval, control.start_decision_interval, control.start_steps) == (32, 16, 64)
    assert _decision_steps(out, 150) == [0, 1, 17, 33, 49, 65, 97, 129]
    capsys.readouterr()
    assert main(["bundle", "--policy", "default", "--start-steps", "64", "--destination", str(out)]) == 2
    assert "--start-steps" in capsys.readouterr().err
