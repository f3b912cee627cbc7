"""The ``learned-lr`` command line.

Flags are generated from the config dataclasses (``learned_lr.settings`` and each layer's
``config`` module: one home for every default and help text) by ``cli.flags``. We build on
argparse rather than tyro because a bad argument must give a one-line error naming the flag and
exit code 2; tyro prints a multi-line panel.

    learned-lr train --task mnist-mlp --schedule cosine --steps 1000 --seed 0 --out runs/cosine
    learned-lr sweep --task mnist-mlp --schedule cosine --lrs 0.02,0.05,0.1,0.2
    learned-lr compare-experts --steps 1000 --out results/experts
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import sys
from pathlib import Path
from typing import Any, Callable, Sequence

from learned_lr.cli.flags import OneLineParser, add_dataclass_flags, build_config, check_output_folders, folder_locks
from learned_lr.settings import MissingExtraError, require_train_extra

try:  # the command line is the research pipeline: without its extra, one line, not a traceback
    require_train_extra("the learned-lr command")
except MissingExtraError as exc:
    sys.exit(f"learned-lr: error: {exc}")

from learned_lr.cli.ruler import cmd_benchmark, cmd_claims, cmd_distill, cmd_explain, cmd_general_train, cmd_validate
from learned_lr.experiments.bundle_config import BundleConfig
from learned_lr.experiments.claims import ClaimsConfig
from learned_lr.experiments.config import (AblationConfig, BCReportConfig, CompareConfig, DemoConfig, EvaluateConfig,
                                           ExplainConfig, ImitateConfig, RobustnessConfig, RobustTrainConfig, SweepConfig, TrainConfig)
from learned_lr.experiments.general import GeneralTrainConfig
from learned_lr.experiments.llm.config import AdaptLLMConfig, CompareLLMConfig, FinetuneLLMConfig, LoRASettings
from learned_lr.experiments.suites import BenchmarkConfig
from learned_lr.experiments.validate import ValidateConfig
from learned_lr.settings import ConfigError, ControlConfig, MissingExtraError
from learned_lr.tasks.seeds import EVAL_SEED_START
from learned_lr.training.config import EXPERT_NAMES, BCConfig, CollectConfig, DistillConfig, PPOConfig

# ---- commands ---------------------------------------------------------------------------------


def cmd_train(config: TrainConfig) -> int:
    from learned_lr.experiments.evaluate import run_schedule
    from learned_lr.experiments.plots import plot_runs
    from learned_lr.files import write_csv, write_json
    from learned_lr.training.experts import expert_schedule

    out = Path(config.out)
    schedule = expert_schedule(config.schedule, config.schedule_shape)
    record = run_schedule(config.task, schedule, config.steps, config.peak_lr, config.seed, progress=True)
    write_csv(out / "metrics.csv", record.metrics_header, record.metrics_rows())
    summary = {**record.summary(), "task": config.task.setting()}
    write_json(out / "summary.json", summary)
    plot_runs([record], out / "curves.png", title=f"{config.task.task}, {config.schedule}, peak LR {config.peak_lr:g}")
    if record.diverged:
        print(f"run diverged at step {len(record.lrs) - 1} (train loss {record.train_loss[-1]:.3g}); files in {out}", file=sys.stderr)
        return 1
    print(f"test loss {record.test_loss:.4f}, test accuracy {record.test_accuracy:.2%}; wrote {out}/metrics.csv, summary.json, curves.png")
    return 0


def cmd_sweep(config: SweepConfig) -> int:
    from learned_lr.experiments.plots import plot_sweep
    from learned_lr.experiments.sweep import run_sweep

    out = Path(config.out)
    results, mean, best = run_sweep(config)
    plot_sweep({config.schedule: results}, out / "sweep.png", title=f"{config.task.task}, {config.schedule}, {config.steps} steps")
    for lr in sorted(mean):
        print(f"peak LR {lr:<8g} final val loss {mean[lr]:.4f}" + ("  <- best" if lr == best else ""))
    print(f"wrote {out}/sweep.json, sweep.png")
    return 0


def cmd_compare_experts(config: CompareConfig) -> int:
    from learned_lr.experiments.evaluate import run_schedule
    from learned_lr.experiments.plots import plot_runs
    from learned_lr.files import write_json, write_text
    from learned_lr.training.experts import expert_schedule

    out = Path(config.out)
    records = []
    for name in ("constant", *EXPERT_NAMES):
        records.append(run_schedule(config.task, expert_schedule(name, config.schedule_shape), config.steps, config.peak_lr, config.seed, progress=True))
    plot_runs(records, out / "experts.png", title=f"{config.task.task}, peak LR {config.peak_lr:g}, {config.steps} steps, seed {config.seed}")
    write_json(out / "experts.json", [r.summary() for r in records])
    lines = ["| schedule | test loss | test accuracy |", "|---|---|---|"]
    for r in records:
        lines.append(f"| {r.schedule} | {'diverged' if r.diverged else f'{r.test_loss:.4f}'} | {'-' if r.diverged else f'{r.test_accuracy:.2%}'} |")
    table = "\n".join(lines)
    write_text(out / "experts.md", f"# Expert schedules on {config.task.task}\n\n![curves](experts.png)\n\n{table}\n")
    print(table)
    print(f"wrote {out}/experts.png, experts.md, experts.json")
    return 0


def cmd_collect(config: CollectConfig) -> int:
    from learned_lr.training.bc import collect_demonstrations

    path = collect_demonstrations(config)
    print(f"wrote {path}")
    return 0


def cmd_bc(config: BCConfig) -> int:
    from learned_lr.training.bc import train_bc

    path = train_bc(config)
    print(f"wrote {path} (training log: {Path(config.out) / 'bc_log.csv'})")
    return 0


def _print_bc_report(report: dict, out: Path) -> int:
    from learned_lr.experiments.pipeline import write_bc_report

    print(write_bc_report(report, out))
    print(f"wrote {out}/bc_policy_vs_scheduler.png, bc_table.md, bc_table.json")
    return 0


def cmd_bc_report(config: BCReportConfig) -> int:
    from learned_lr.experiments.bc_report import bc_report
    from learned_lr.experiments.pipeline import bc_settings, policy_paths

    paths = policy_paths(Path(config.bc_root))
    if not paths:
        print(f"learned-lr bc-report: error: --bc-root: no bc-*/policy.safetensors under {config.bc_root}", file=sys.stderr)
        return 2
    report = bc_report(paths, bc_settings(config.mlp_steps, config.mlp_seeds, config.resnet_steps, config.resnet_seeds, config.resnet_width), config.handoff_fraction)
    return _print_bc_report(report, Path(config.out))


def cmd_imitate(config: ImitateConfig) -> int:
    from learned_lr.experiments.bc_report import bc_report
    from learned_lr.experiments.pipeline import bc_settings, run_imitation

    paths = run_imitation(Path(config.work), config.collect_config(), config.bc_config())
    report = bc_report(paths, bc_settings(config.mlp_steps, config.mlp_seeds, config.resnet_steps, config.resnet_seeds))
    return _print_bc_report(report, Path(config.out))


def cmd_ppo(config: PPOConfig) -> int:
    from learned_lr.training.ppo import train_ppo

    path = train_ppo(config)
    print(f"wrote {path} (training log: {Path(config.out) / 'ppo_log.csv'})")
    return 0


def cmd_demo(config: DemoConfig) -> int:
    from learned_lr.experiments.pipeline import run_demo

    index = run_demo(config)
    print(index.read_text())
    timings = json.loads((index.parent / "run_info.json").read_text())["timings_s"]
    print("wall time per stage: " + ", ".join(f"{stage} {seconds:.0f} s" for stage, seconds in timings.items()))
    print(f"wrote {index} and the figures and tables beside it")
    return 0


def cmd_bundle(config: BundleConfig) -> int:
    from learned_lr.bundle import bundle_policy
    from learned_lr.bundled import BUNDLED_POLICIES, resolve_policy

    destination = Path(config.destination) if config.destination else BUNDLED_POLICIES[config.name]
    source = resolve_policy(config.policy)  # a path, or a bundled policy's name
    meta = {"produced_by": config.produced_by, "scored": config.scored}
    if config.policy in BUNDLED_POLICIES:  # not this machine's absolute path to the package
        meta["bundled_from"] = f"the bundled policy {config.policy!r} (src/learned_lr/policies/{source.name})"
    members = [resolve_policy(p) for p in config.ensemble_members]
    short = (resolve_policy(config.short_runs), config.short_run_steps) if config.short_runs else None
    if config.short_runs in BUNDLED_POLICIES:
        meta["short_run_policy"] = f"the bundled policy {config.short_runs!r} (src/learned_lr/policies/{short[0].name})"
    structural = (resolve_policy(config.structural), config.structural_min_layers) if config.structural else None
    if config.structural in BUNDLED_POLICIES:
        meta["structural_policy"] = f"the bundled policy {config.structural!r} (src/learned_lr/policies/{structural[0].name})"
    bundle_policy(source, destination, meta, config.control_changes, members, short, structural, bool(config.structural_zero_start))
    gate = f" (runs shorter than {short[1]} steps: {short[0]})" if short else ""
    gate += f" (models of {structural[1]} layers or more{', or starting with a zero gradient' * config.structural_zero_start}: {structural[0]})" if structural else ""
    print(f"wrote {destination} ({destination.stat().st_size / 1e6:.2f} MB) from {', '.join(map(str, [source, *members]))}{gate}")
    return 0


def cmd_ablations(config: AblationConfig) -> int:
    from learned_lr.experiments.ablations import run_ablations

    path = run_ablations(config)
    print(path.read_text())
    return 0


def cmd_evaluate(config: EvaluateConfig) -> int:
    from learned_lr.experiments.evaluate import SchedulerSpec, comparison_table, evaluate_schedulers
    from learned_lr.experiments.plots import plot_scheduler_comparison
    from learned_lr.files import write_json, write_text
    from learned_lr.policy import load_policy

    for _, path in config.policy_list:
        load_policy(path)  # a missing or bad checkpoint fails here, before any training
    specs = [SchedulerSpec(label, policy_path=path) for label, path in config.policy_list]
    specs += [SchedulerSpec(name, expert=name) for name in config.schedule_list]
    if not specs:
        print("learned-lr evaluate: error: --policies/--schedules: nothing to evaluate", file=sys.stderr)
        return 2
    task = config.task
    label = task.task if task.task == "mnist-mlp" else f"{task.task} (width {task.width})"
    out = Path(config.out)
    # Each scheduler's outcome is saved under out/work as it finishes; a rerun reuses it.
    rows, curves = evaluate_schedulers(specs, task, config.steps, config.peak_lr, config.seeds, label=label, work=out / "work")
    plot_scheduler_comparison({label: curves}, rows, out / "evaluation.png")
    table = comparison_table(rows)
    write_json(out / "evaluation.json", rows)
    write_text(out / "evaluation.md", f"# Evaluation on {label}, {config.steps} steps, peak LR {config.peak_lr:g}, {config.seeds} held-out seeds\n\n"
               "![evaluation](evaluation.png)\n\nMean ± 95% CI half-width.\n\n" + table + "\n")
    print(table)
    print(f"wrote {out}/evaluation.md, evaluation.json, evaluation.png")
    return 0


def cmd_robust_train(config: RobustTrainConfig) -> int:
    from learned_lr.experiments.pipeline import run_robust_training

    for name, path in run_robust_training(config).items():
        print(f"{name}: {path}")
    return 0


def cmd_robustness(config: RobustnessConfig) -> int:
    from learned_lr.bundled import resolve_policy
    from learned_lr.experiments.plots import plot_robustness
    from learned_lr.experiments.robustness import Contender, markdown_report, run_or_load, summarize
    from learned_lr.files import write_json, write_text
    from learned_lr.policy import load_policy

    contenders = [Contender(name, "schedule", name) for name in config.schedule_list]
    contenders += [Contender(name, "baseline", name) for name in config.baseline_list]
    for label, path in config.policy_list:
        path = str(resolve_policy(path))  # "bundled": the default; or a bundled name, or a checkpoint path
        load_policy(path)  # a missing or bad checkpoint fails here, before any training
        contenders.append(Contender(label, "policy", path))
    if "greedy" in config.baseline_list:
        from learned_lr.experiments.baselines import make_baseline

        make_baseline("greedy", ControlConfig())  # without transformers: the install hint now, not after an hour
    task = config.task
    title = task.task if task.task == "mnist-mlp" else f"{task.task} (width {task.width})"
    title += f", {task.optimizer}, {config.steps} steps, {config.seeds} seeds"
    if config.first_seed != EVAL_SEED_START:
        title += f" from {config.first_seed} (validation)"
    work = Path(config.work)
    results = []
    for contender in contenders:
        results.append(run_or_load(contender, task, config.steps, config.lr_list, config.seeds, work, first_seed=config.first_seed))
        print(f"  {contender.label}: done")
    summary = summarize(results, config.core_lr_list)
    out = Path(config.out)
    plot_robustness(summary, results, out / "robustness.png", title=title)
    report = markdown_report(summary, title)
    write_json(out / "robustness.json", summary)
    write_text(out / "robustness.md", f"# Robustness to the base LR\n\n![robustness](robustness.png)\n\n{report}")
    print(report)
    print(f"wrote {out}/robustness.md, robustness.json, robustness.png")
    return 0


def _check_learned_policy(settings: LoRASettings) -> None:
    from learned_lr.bundled import resolve_policy
    from learned_lr.policy import load_policy

    load_policy(resolve_policy(settings.policy))  # a bad checkpoint fails now


def cmd_finetune_llm(config: FinetuneLLMConfig) -> int:
    from learned_lr.experiments.llm.finetune import finetune

    if config.scheduler == "learned":
        _check_learned_policy(config.settings)
    result = finetune(config)
    status = "DIVERGED" if result["diverged"] else "done"
    print(f"{config.scheduler}: {status}; held-out loss {result['held_out_before']:.4f} -> {result['held_out_after']:.4f}, "
          f"fortunes loss {result['forget_before']:.4f} -> {result['forget_after']:.4f} (forgetting {result['forgetting']:+.4f}), "
          f"train-loss increments {result['smoothness']:.3f}")
    print(f"wrote {config.out}/result.json and the adapter in {config.out}/adapter")
    return 0


def cmd_compare_llm(config: CompareLLMConfig) -> int:
    from learned_lr.experiments.llm.compare import markdown_report, run_comparison, summarize
    from learned_lr.experiments.plots import plot_llm_comparison
    from learned_lr.files import write_json, write_text
    from learned_lr.tasks.llm.model import float32_copy, require_qlora

    if config.settings.qlora:
        require_qlora()
    if "learned" in config.scheduler_list:
        _check_learned_policy(config.settings)
    for _, path in config.policy_list:
        _check_learned_policy(dataclasses.replace(config.settings, policy=path))
    float32_copy(config.settings.cache_dir or None)  # a missing model package fails now, with the install hint
    results = run_comparison(config)
    summary = summarize(results, config)
    out = Path(config.out)
    plot_llm_comparison(results, out / "llm.png", title=f"LoRA fine-tuning of SmolLM2-135M, {config.settings.steps} steps")
    report = markdown_report(summary)
    write_json(out / "llm.json", summary)
    write_text(out / "llm.md", f"# LoRA fine-tuning under each LR scheduler\n\n![llm](llm.png)\n\n{report}")
    print(report)
    print(f"wrote {out}/llm.md, llm.json, llm.png")
    return 0


def cmd_adapt_llm(config: AdaptLLMConfig) -> int:
    from learned_lr.experiments.llm.adapt import adapt_policy
    from learned_lr.tasks.llm.model import float32_copy

    _check_learned_policy(config.settings)
    float32_copy(config.settings.cache_dir or None)
    path = adapt_policy(config)
    print(f"wrote {path} (log: {Path(config.out) / 'adapt_log.csv'}); compare it with:")
    print(f'  learned-lr compare-llm --policies "learned (adapted)={path}"')
    return 0


COMMANDS: dict[str, tuple[type, Callable[[Any], int], str]] = {
    "train": (TrainConfig, cmd_train, "train one trainee under one schedule"),
    "sweep": (SweepConfig, cmd_sweep, "sweep the peak LR of a schedule on a task"),
    "compare-experts": (CompareConfig, cmd_compare_experts, "train one trainee per expert schedule and plot them together"),
    "collect": (CollectConfig, cmd_collect, "collect expert demonstrations for behavioral cloning"),
    "bc": (BCConfig, cmd_bc, "behavioral cloning of one policy on demonstrations"),
    "bc-report": (BCReportConfig, cmd_bc_report, "roll BC policies out next to their experts: figure and tables"),
    "imitate": (ImitateConfig, cmd_imitate, "demonstrations -> four BC policies -> BC-vs-expert report"),
    "ppo": (PPOConfig, cmd_ppo, "PPO fine-tuning of a policy (from a BC checkpoint or random)"),
    "robust-train": (RobustTrainConfig, cmd_robust_train, "a policy for mistuned base LRs: oracle demonstrations -> BC -> DAgger (-> PPO) across base LRs"),
    "robustness": (RobustnessConfig, cmd_robustness, "every scheduler across a range of base LRs: table and figure"),
    "general-train": (GeneralTrainConfig, cmd_general_train, "one policy for every model: per-variant tuned-LR oracles on the training families -> BC -> DAgger"),
    "benchmark": (BenchmarkConfig, cmd_benchmark, "the ruler: every contender (schedules, loss-driven, LR-free optimizers, policies) on every task family across LR multipliers"),
    "distill": (DistillConfig, cmd_distill, "one actor cloned from a teacher policy's decisions (an ensemble's) on stored states"),
    "validate": (ValidateConfig, cmd_validate, "choose between policies on the training families: every policy on the same validation runs "
                 "(fresh variants x LR multipliers), paired against the first"),
    "explain": (ExplainConfig, cmd_explain, "one run under LearnedLR in a plain loop: the LR it set, each decision and the losses it read, as a figure"),
    "evaluate": (EvaluateConfig, cmd_evaluate, "policies vs expert schedules on held-out seeds: table with 95% CIs and a figure"),
    "ablations": (AblationConfig, cmd_ablations, "the proposal's claims as PPO ablations at one budget: table and verdicts"),
    "claims": (ClaimsConfig, cmd_claims, "the proposal's claims and what PPO adds, on the general policy's distribution, judged on the benchmark with paired CIs"),
    "finetune-llm": (FinetuneLLMConfig, cmd_finetune_llm, "LoRA-fine-tune SmolLM2-135M offline under one LR scheduler; forgetting measured"),
    "compare-llm": (CompareLLMConfig, cmd_compare_llm, "LoRA fine-tuning: every scheduler x batch size x seed; table and figure"),
    "adapt-llm": (AdaptLLMConfig, cmd_adapt_llm, "adapt a policy to LoRA fine-tuning: behavioral cloning on LoRA runs under a teacher schedule"),
    "bundle": (BundleConfig, cmd_bundle, "ship a trained policy in the package as LearnedLR's default"),
    "demo": (DemoConfig, cmd_demo, "the whole pipeline at a small budget: demonstrations, BC, PPO, evaluation, figures"),
}


# What a rerun into the same folder does, per resumable command (issue 21: a result is reused only
# for the settings that produced it); shown at the end of the command's --help.
ON_RERUN = {
    "collect": "each part (expert x run length) records its setting and is reused only if the setting matches; "
               "the others are collected again and the merged file is rebuilt",
    "bc": "with --resume, training continues from out/train_state only if every BC flag and the demonstrations (SHA-256) "
          "match; another --epochs or other demonstrations train from the start, any other change stops with an error "
          "(use another --out or --no-resume)",
    "ppo": "with --resume, PPO continues (more --iterations allowed) only for the same starting policy (SHA-256), variants "
           "and every other flag; --backend, --ray-address and --workers may change; anything else stops with an error",
    "imitate": "demonstrations as for collect; each BC policy is reused only for the same BC settings and demonstrations (SHA-256)",
    "demo": "every stage as its command: demonstrations as for collect, BC policies only for the same settings and demonstrations, "
            "PPO as for ppo, evaluation cells keyed on their whole setting",
    "robust-train": "a rerun may add DAgger rounds or PPO iterations; any other change to the recipe is refused",
    "general-train": "a rerun may add DAgger rounds or PPO iterations; any other change to the recipe is refused",
    "claims": "each PPO run resumes as for ppo (more --iterations allowed) and each benchmark cell is reused only for the same setting",
    "robustness": "each scheduler's result is keyed on its whole setting (task, optimizer, sizes, steps, seeds, LRs, policy SHA-256) "
                  "and computed again for any other",
    "benchmark": "each cell and tuning sweep is keyed on its whole setting (policy SHA-256 included) and computed again for any other",
    "distill": "the relabelled states are reused only for the same teacher and demonstrations (SHA-256); the student as for bc",
    "validate": "each sweep and each policy's runs of a variant are keyed on their whole setting (policy SHA-256 included)",
    "evaluate": "each scheduler's outcome is keyed on its whole setting (policy SHA-256 included) and computed again for any other",
    "compare-llm": "each run is keyed on its whole setting and computed again for any other",
}


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="learned-lr", description="A learned learning-rate scheduler for PyTorch.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=OneLineParser)
    for name, (config_cls, _, help_text) in COMMANDS.items():
        epilog = f"On a rerun into the same folder: {ON_RERUN[name]}." if name in ON_RERUN else None
        add_dataclass_flags(sub.add_parser(name, help=help_text.replace("%", "%%"), description=help_text,
                                           epilog=None if epilog is None else epilog.replace("%", "%%")), config_cls)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = vars(parser.parse_args(argv))
    command = args.pop("command")
    config_cls, run, _ = COMMANDS[command]
    locks = contextlib.ExitStack()
    try:
        config = build_config(config_cls, args)
        check_output_folders(config)
        locks.enter_context(folder_locks(config))
    except ConfigError as exc:
        print(f"learned-lr {command}: error: {exc}", file=sys.stderr)
        return 2
    try:
        with locks:
            return run(config)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # known failure kinds get one clear line, not a traceback
        from learned_lr.checkpoint import CheckpointError
        from learned_lr.tasks.data import MnistDataError
        from learned_lr.tasks.datasets import TaskDataError

        if isinstance(exc, (MnistDataError, TaskDataError, CheckpointError, MissingExtraError, ConfigError)):
            print(f"learned-lr {command}: error: {exc}", file=sys.stderr)
            return 1
        raise
