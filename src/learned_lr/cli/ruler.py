"""The commands of the general policy: train it across families (`general-train`), measure schedulers on every
family (`benchmark`), compare policies on validation runs of the training families (`validate`), test the proposal's claims
with PPO on its distribution (`claims`), and show one run's decisions (`explain`)."""

from __future__ import annotations

from pathlib import Path

from learned_lr.experiments.claims import ClaimsConfig
from learned_lr.experiments.config import ExplainConfig
from learned_lr.experiments.suites import BenchmarkConfig
from learned_lr.experiments.general import GeneralTrainConfig
from learned_lr.experiments.validate import ValidateConfig
from learned_lr.settings import ConfigError, ControlConfig
from learned_lr.training.config import DistillConfig


def cmd_benchmark(config: BenchmarkConfig) -> int:
    from learned_lr.bundled import resolve_policy
    from learned_lr.experiments.benchmark import contenders, markdown_report, run_benchmark
    from learned_lr.experiments.plots import plot_benchmark
    from learned_lr.experiments.suites import SUITES
    from learned_lr.files import write_json, write_text
    from learned_lr.policy import load_policy
    from learned_lr.tasks.optimizers import require_anchor

    # PATH "bundled" is the default bundled policy; a bundled policy's name ("general") or a checkpoint path otherwise.
    policies = [(label, str(resolve_policy(path))) for label, path in config.policy_list]
    entrants = contenders(config.contender_list, policies)
    labels = [c.label for c in entrants]
    if len(set(labels)) != len(labels):
        raise ConfigError("policies", f"contender labels must be unique, got {', '.join(labels)}")
    for contender in entrants:  # a missing extra or a bad checkpoint fails now, not an hour in
        if contender.kind == "anchor":
            require_anchor(contender.name)
        elif contender.kind == "policy":
            load_policy(contender.name)
        elif contender.name == "greedy":
            from learned_lr.experiments.baselines import make_baseline

            make_baseline("greedy", ControlConfig())
    suite = SUITES[config.suite]
    result = run_benchmark(suite, config.family_list, entrants, Path(config.work), config.multiplier_list or None, config.seeds or None,
                           workers=config.workers)
    out = Path(config.out)
    plot_benchmark(result, out / "benchmark.png")
    report = markdown_report(result)
    write_json(out / "benchmark.json", result)
    write_text(out / "benchmark.md", f"# learned-lr benchmark\n\n![benchmark](benchmark.png)\n\n{report}")
    print(report)
    print(f"wrote {out}/benchmark.md, benchmark.json, benchmark.png")
    return 0


def cmd_explain(config: ExplainConfig) -> int:
    from learned_lr.bundled import resolve_policy
    from learned_lr.experiments.explain import explain_run, held_back_words
    from learned_lr.experiments.plots import plot_decisions
    from learned_lr.files import write_json
    from learned_lr.policy import load_policy

    if config.policy != "bundled":
        load_policy(resolve_policy(config.policy))  # a bad checkpoint fails now, in one line ("general": the bundled one)
    result = explain_run(config.task, config.steps, config.base_lr, config.seed, config.policy, config.feed_losses)
    out = Path(config.out)
    plot_decisions(result, out / "decisions.png")
    write_json(out / "decisions.json", result)
    limit = "".join(f", {words}" for words in (held_back_words(result), result["cooldown"]) if words)
    print(f"{len(result['decisions'])} decisions by {result['deciders']} ({result['cadence']}{limit}); final LR {result['lrs'][-1]:.4g} "
          f"({result['lrs'][-1] / config.base_lr:.3g}x base); test loss {result['test_loss']:.4f}")
    print(f"wrote {out}/decisions.png, decisions.json")
    return 0


def cmd_general_train(config: GeneralTrainConfig) -> int:
    from learned_lr.experiments.general import run_general_training
    from learned_lr.training.distribution import HELD_OUT_FAMILIES

    paths = run_general_training(config)
    for name, path in paths.items():
        print(f"{name}: {path}")
    policies = ",".join(f"general {name}={path}" for name, path in paths.items())
    print(f"held out (never trained on): {', '.join(HELD_OUT_FAMILIES)}. Judge every stage on the benchmark:")
    print(f'  learned-lr benchmark --suite small --policies "{policies}"')
    return 0


def cmd_claims(config: ClaimsConfig) -> int:
    from learned_lr.experiments.claims import run_claims

    path = run_claims(config)
    print(path.read_text())
    print(f"wrote {path} (and claims.json, ppo_curve.png, il_ppo_result.png, benchmark.md/json in {path.parent})")
    return 0


def cmd_validate(config: ValidateConfig) -> int:
    from learned_lr.experiments.plots import plot_validation
    from learned_lr.experiments.validate import markdown_report, run_validation
    from learned_lr.files import write_json, write_text

    result = run_validation(config)
    out = Path(config.out)
    plot_validation(result, out / "validation.png")
    report = markdown_report(result)
    write_json(out / "validation.json", result)
    write_text(out / "validation.md", f"# learned-lr validate\n\n![validation](validation.png)\n\n{report}")
    print(report)
    print(f"wrote {out}/validation.md, validation.json, validation.png")
    return 0


def cmd_distill(config: DistillConfig) -> int:
    from learned_lr.bundled import resolve_policy
    from learned_lr.policy import load_policy
    from learned_lr.training.bc import train_bc
    from learned_lr.training.config import BCConfig
    from learned_lr.training.distill import relabel_with_teacher

    teacher = load_policy(resolve_policy(config.teacher))
    data = Path(config.out) / "data"
    relabel_with_teacher(teacher, config.demos, data)
    bc = BCConfig(policy=teacher.policy_config, demos=str(data), experts=config.experts, epochs=config.epochs, seed=config.seed, out=config.out)
    path = train_bc(bc)
    print(f"wrote {path} (one actor cloned from {config.teacher}'s decisions on {config.demos}'s states)")
    return 0
