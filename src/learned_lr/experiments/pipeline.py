"""The end-to-end pipelines behind `learned-lr imitate` and `learned-lr demo`.

demo: expert demonstrations -> the four BC policies -> PPO from the combined BC policy and from
the best single one -> evaluation on held-out seeds (MNIST-MLP, and ResNet-18 with no further
training) -> both figures, the tables, and ``index.md`` in one results folder. Every stage
writes its output under ``work/`` and is skipped or resumed when run again.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

from learned_lr.experiments.config import DemoConfig, RobustTrainConfig
from learned_lr.experiments.general import check_same_recipe
from learned_lr.files import write_json, write_text
from learned_lr.settings import ControlConfig
from learned_lr.tasks.config import TaskConfig
from learned_lr.training.config import EXPERT_NAMES, BCConfig, CollectConfig, PPOConfig


def bc_settings(mlp_steps: int, mlp_seeds: int, resnet_steps: int, resnet_seeds: int, resnet_width: int = 16, resnet_batch: int = 128):
    from learned_lr.experiments.bc_report import TaskSetting

    settings = [TaskSetting("mnist-mlp", TaskConfig(), mlp_steps, mlp_seeds)]
    if resnet_steps > 0:
        task = TaskConfig(task="mnist-resnet18", width=resnet_width, batch_size=resnet_batch, val_batch_size=resnet_batch)
        settings.append(TaskSetting(f"mnist-resnet18 (width {resnet_width})", task, resnet_steps, resnet_seeds))
    return settings


def policy_paths(root: Path) -> dict[str, Path]:
    """The BC policies found under ``root`` (bc-<expert>/ and bc-all/), by name."""
    paths = {name: root / f"bc-{name}" / "policy.safetensors" for name in (*EXPERT_NAMES, "all")}
    return {name: path for name, path in paths.items() if path.is_file()}


def write_bc_report(report: dict, out: Path) -> str:
    from learned_lr.experiments.bc_report import markdown_table
    from learned_lr.experiments.plots import plot_bc_vs_experts

    plot_bc_vs_experts(report["curves"], EXPERT_NAMES, out / "bc_policy_vs_scheduler.png")
    table = markdown_table(report["rows"])
    write_json(out / "bc_table.json", report["rows"])
    write_text(out / "bc_table.md", "# BC policies vs expert schedules (held-out seeds)\n\n![curves](bc_policy_vs_scheduler.png)\n\n"
               "Mean ± std over seeds. LR error: mean |log(policy LR / expert LR)| per step, both clipped to the action's bounds.\n\n" + table + "\n")
    return table


def run_imitation(work: Path, collect: CollectConfig, bc: BCConfig) -> dict[str, Path]:
    """Demonstrations and the four BC policies (resumable); returns the policy paths."""
    from learned_lr.training.bc import bc_policy_is_current, collect_demonstrations, train_bc

    collect_demonstrations(dataclasses.replace(collect, out=str(work / "demos")))
    for name in (*EXPERT_NAMES, "all"):
        experts = ",".join(EXPERT_NAMES) if name == "all" else name
        out = work / f"bc-{name}"
        policy_config = dataclasses.replace(bc, demos=str(work / "demos"), experts=experts, out=str(out))
        if not bc_policy_is_current(policy_config):
            train_bc(policy_config)
    return policy_paths(work)


def run_demo(config: DemoConfig) -> Path:
    from learned_lr.experiments.bc_report import bc_report
    from learned_lr.experiments.evaluate import SchedulerSpec, comparison_table, evaluate_schedulers
    from learned_lr.experiments.plots import plot_scheduler_comparison
    from learned_lr.training.ppo import train_ppo

    budget = config.budget
    work, out = Path(config.work), Path(config.out)
    timings: dict[str, float] = {}
    start = time.perf_counter()

    # 1-2. Demonstrations and the four BC policies.
    collect = CollectConfig(total_steps=budget["demo_total_steps"], runs_per_setting=budget["demo_runs"], seed=config.seed)
    bc = BCConfig(epochs=budget["bc_epochs"], seed=config.seed)
    paths = run_imitation(work, collect, bc)
    timings["demonstrations + BC"] = time.perf_counter() - start

    # The first result: BC policies vs their experts (MNIST-MLP).
    t = time.perf_counter()
    report = bc_report(paths, bc_settings(budget["bc_eval_steps"], budget["bc_eval_seeds"], 0, 1))
    bc_table = write_bc_report(report, out)
    timings["BC report"] = time.perf_counter() - t
    single = [r for r in report["rows"] if r["policy"] == f"BC {r['expert']}"]
    best_single = min(single, key=lambda r: r["policy_test_loss"]["mean"])["expert"]

    # 3. PPO from the combined BC policy and from the best single one.
    t = time.perf_counter()
    ppo_paths = {}
    for name in ("all", best_single):
        ppo_out = work / f"ppo-{name}"
        ppo = PPOConfig(init=str(paths[name]), iterations=budget["ppo_iterations"], runs_per_iteration=budget["ppo_runs"],
                            total_steps=budget["ppo_total_steps"], seed=config.seed, out=str(ppo_out))
        ppo_paths[name] = train_ppo(ppo)
    timings["PPO"] = time.perf_counter() - t

    # 4. Evaluation on held-out seeds: MNIST-MLP, then ResNet-18 with the MLP-trained policies.
    t = time.perf_counter()
    specs = [SchedulerSpec("PPO (from BC all)", policy_path=str(ppo_paths["all"])),
             SchedulerSpec(f"PPO (from BC {best_single})", policy_path=str(ppo_paths[best_single])),
             SchedulerSpec("BC all", policy_path=str(paths["all"])),
             SchedulerSpec(f"BC {best_single}", policy_path=str(paths[best_single])),
             *(SchedulerSpec(name, expert=name) for name in EXPERT_NAMES),
             SchedulerSpec("constant", expert="constant")]
    # The BC report ran the experts, BC all and the best single BC policy on these held-out seeds
    # already when its budget is the evaluation's: those runs are scored, not run again.
    same_runs = (budget["bc_eval_steps"], budget["bc_eval_seeds"]) == (budget["eval_steps"], budget["eval_seeds"])
    mlp_curves = report["curves"]["mnist-mlp"]
    done = {"BC all": mlp_curves["BC all, on its own"], f"BC {best_single}": mlp_curves[f"BC {best_single}|{best_single}"],
            **{name: mlp_curves[f"expert:{name}"] for name in EXPERT_NAMES}} if same_runs else {}
    rows, curves = evaluate_schedulers(specs, TaskConfig(), budget["eval_steps"], TaskConfig().tuned_peak_lr, budget["eval_seeds"],
                                       label="mnist-mlp", work=work / "eval-mnist-mlp", done=done)
    curves_by_task = {"mnist-mlp": curves}
    test_images = f", first {budget['resnet_test_examples']:,} test images" if budget["resnet_test_examples"] else ""
    resnet_label = f"mnist-resnet18 (width {config.resnet_model_width}{test_images})"
    if budget["resnet_steps"] > 0:
        resnet = TaskConfig(task="mnist-resnet18", width=config.resnet_model_width, batch_size=budget["resnet_batch"],
                            val_batch_size=budget["resnet_batch"], test_examples=budget["resnet_test_examples"])
        # The small preset's ResNet-18 rows are a smoke test of transfer, kept cheap: each ResNet run
        # costs seconds on 2 cores, so it runs the combined policies and two experts only, and scores
        # them on the first 1,000 test images (half of a run's cost was the 10k-image test pass).
        fixed = budget["resnet_fixed"].split(",")

        def on_resnet(spec: SchedulerSpec) -> bool:
            if spec.expert is not None:
                return spec.expert in fixed
            return budget["resnet_single_expert_policies"] or best_single not in spec.label

        resnet_specs = [spec for spec in specs if on_resnet(spec)]
        resnet_rows, resnet_curves = evaluate_schedulers(resnet_specs, resnet, budget["resnet_steps"], resnet.tuned_peak_lr, budget["resnet_seeds"],
                                                         label=resnet_label, work=work / "eval-mnist-resnet18")
        rows += resnet_rows
        curves_by_task[resnet_label] = resnet_curves
    timings["evaluation"] = time.perf_counter() - t
    plot_scheduler_comparison(curves_by_task, rows, out / "il_ppo_result.png")
    table = comparison_table(rows)
    write_json(out / "il_ppo_table.json", rows)
    write_text(out / "il_ppo_table.md", "# IL + PPO vs BC vs experts (held-out seeds)\n\n![result](il_ppo_result.png)\n\n" + table + "\n")
    timings["total"] = time.perf_counter() - start

    ppo_logs = {name: (work / f"ppo-{name}" / "ppo_log.csv").read_text() for name in ppo_paths}
    index = _index_markdown(config, budget, best_single, bc_table, table, timings, ppo_logs)
    write_text(out / "index.md", index)
    write_json(out / "run_info.json", {"config": dataclasses.asdict(config), "budget": budget, "best_single_expert": best_single, "timings_s": timings})
    return out / "index.md"


def _index_markdown(config, budget, best_single, bc_table, table, timings, ppo_logs) -> str:
    lines = [
        f"# learned-lr demo ({config.preset} preset)",
        "",
        f"Produced by `learned-lr demo --preset {config.preset}`. Budget: `{json.dumps(budget)}`.",
        "Wall time: " + ", ".join(f"{k} {v:.0f} s" for k, v in timings.items()) + ".",
        "",
        "## BC policy vs expert scheduler",
        "",
        "![BC policy vs expert](bc_policy_vs_scheduler.png)",
        "",
        "Mean ± std over held-out seeds (from 100000). LR error: mean |log(policy LR / expert LR)| per step, both clipped to the action's bounds; "
        "'expert below bound' is the share of steps where the expert's LR is below the lowest LR the policy can set.",
        "",
        bc_table,
        "",
        "## IL + PPO fine-tuning",
        "",
        f"PPO starts from the combined BC policy and from the best single one (BC {best_single}, lowest test loss above), "
        "with the proposal's reward, a critic warm-up and a KL anchor to the BC policy. ResNet-18 rows use the MLP-trained policies with no further training.",
        "",
        "![IL + PPO result](il_ppo_result.png)",
        "",
        "Mean ± 95% CI half-width over held-out seeds. Train-loss AUC: mean of train loss / first train loss over the run. "
        "Roughness: sum of positive step-to-step increases of the normalized train loss.",
        "",
        table,
        "",
        "## PPO training logs",
        "",
    ]
    for name, log in ppo_logs.items():
        lines += [f"PPO from BC {name}:", "", "```", log.strip(), "```", ""]
    return "\n".join(lines)


def run_robust_training(config: RobustTrainConfig) -> dict[str, Path]:
    """Oracle demonstrations -> BC -> DAgger rounds -> PPO across base LRs, each stage resumable; the policy paths.

    The oracle (``training.rollout.ScheduleController`` with ``target_peak_lr``) labels every
    decision with what the expert would do at the tuned peak LR, whatever the run's base LR, so
    BC learns to read a mistuned base LR off the run. Each DAgger round (``training.dagger``)
    runs the latest policy, labels the states it reached with the oracle, and clones again on all
    data so far. PPO then trains on-policy across the same range of base LRs with the proposal's
    reward, the action free to go up to 4x the base LR.
    """
    from learned_lr.policy import load_policy
    from learned_lr.tasks.seeds import DAGGER_SEED_START
    from learned_lr.training.bc import collect_demonstrations, train_bc
    from learned_lr.training.dagger import collect_policy_states, merge_demonstrations
    from learned_lr.training.experts import expert_schedule
    from learned_lr.training.ppo import train_ppo
    from learned_lr.training.rollout import ScheduleController

    work = Path(config.work)
    check_same_recipe({k: v for k, v in dataclasses.asdict(config).items() if k not in _ROBUST_RESUMABLE}, work / "robust_train.json")
    task = TaskConfig()
    target = config.target_peak_lr if config.target_peak_lr is not None else task.tuned_peak_lr
    collect = CollectConfig(
        task=task, control=ControlConfig(decision_interval=config.decision_interval), experts=config.expert,
        total_steps=config.demo_total_steps, runs_per_setting=config.demo_runs, min_peak_lr=config.min_base_lr,
        max_peak_lr=config.max_base_lr, action_noise=config.action_noise, target_peak_lr=target, seed=config.seed,
        out=str(work / "demos"))
    collect_demonstrations(collect)
    paths = {"bc-oracle": work / "bc-oracle" / "policy.safetensors"}
    if not paths["bc-oracle"].is_file():
        train_bc(BCConfig(demos=str(work / "demos"), experts=config.expert, epochs=config.bc_epochs, seed=config.seed, out=str(work / "bc-oracle")))
    latest = paths["bc-oracle"]
    oracle = ScheduleController(expert_schedule(config.expert), collect.control, target_peak_lr=target)
    dagger_collect = dataclasses.replace(collect, runs_per_setting=config.dagger_runs)
    for round_index in range(1, config.dagger_rounds + 1):
        round_dir = work / "dagger" / f"round-{round_index}"
        policy_path = round_dir / "bc" / "policy.safetensors"
        if not policy_path.is_file():
            first_seed = DAGGER_SEED_START + config.seed * 1000 + round_index * 100
            collect_policy_states(load_policy(latest), oracle, dagger_collect, first_seed, round_dir / "states")
            sources = [work / "demos", *(work / "dagger" / f"round-{k}" / "states" for k in range(1, round_index + 1))]
            merge_demonstrations(sources, round_dir / "data" / "demos.safetensors")
            train_bc(BCConfig(demos=str(round_dir / "data"), experts=config.expert, epochs=config.bc_epochs, seed=config.seed,
                                  out=str(round_dir / "bc")))
        latest = paths[f"dagger-{round_index}"] = policy_path
    if config.ppo_iterations > 0:
        ppo = PPOConfig(task=task, init=str(latest), iterations=config.ppo_iterations, runs_per_iteration=config.ppo_runs,
                            total_steps=config.ppo_total_steps, min_peak_lr=config.min_base_lr, max_peak_lr=config.max_base_lr,
                            seed=config.seed, out=str(work / "ppo"))
        paths["ppo"] = train_ppo(ppo)
    return paths


# What a rerun may change in a robust-train work folder: more DAgger rounds or PPO iterations
# continue it; anything else (the oracle's expert, the base-LR range, run lengths, seeds) would
# mix demonstrations and policies made under different recipes, so it is refused.
_ROBUST_RESUMABLE = ("dagger_rounds", "ppo_iterations", "work")
