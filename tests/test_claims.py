"""`learned-lr claims` end to end at toy size: PPO arms from a general-train recipe, scored on the benchmark, paired verdicts."""

import csv
import json
import math

import numpy as np
import pytest

from learned_lr.cli import main
from learned_lr.experiments.claims import ClaimsConfig, run_claims, verdict
from learned_lr.experiments.general import GeneralTrainConfig, run_general_training
from learned_lr.settings import ConfigError


def test_claims_trains_every_arm_scores_them_on_the_benchmark_and_gives_paired_verdicts(tmp_path):
    general = tmp_path / "g"
    run_general_training(GeneralTrainConfig(variants_per_family=1, min_steps=20, max_steps=30, sweep_points=2, demo_runs=2, bc_epochs=1,
                                            dagger_rounds=1, dagger_runs=2, work=str(general)), progress=False)
    config = ClaimsConfig(general_work=str(general), iterations=2, runs=4, variants_per_iteration=2, validate_every=1, seeds="0,1",
                          arm_seeds="0", seeded_arms="no-stability", curve_seeds="0", early_iterations=2, suite="smoke", families="digits,char-lm", benchmark_work=str(tmp_path / "bench"),
                          contenders="linear-warmup,cosine", levers="final-reward", work=str(tmp_path / "claims"), out=str(tmp_path / "out"))
    path = run_claims(config, progress=False)
    report = json.loads((tmp_path / "out" / "claims.json").read_text())
    result = json.loads((tmp_path / "out" / "benchmark.json").read_text())
    assert set(report["comparisons"]) == {"(e) PPO vs its DAgger start", "PPO vs (a) random init", "PPO vs (b) no stability term",
                                          "PPO vs (c) single-step observation", "PPO vs (d) Subramanian et al.",
                                          "PPO + final-loss reward vs the DAgger start", "PPO + final-loss reward vs PPO"}
    # A lever is PPO from the DAgger start with one setting changed, paired with PPO seed by seed.
    lever = json.loads((tmp_path / "claims" / "final-reward" / "seed-0" / "policy.json").read_text())["ppo_config"]
    assert lever["reward"]["kind"] == "final" and lever["reward"]["discount"] == 1.0 and lever["init"] == report["policies"]["DAgger (start)"]
    assert report["comparisons"]["PPO + final-loss reward vs PPO"]["training"]["cells"] == 2
    # (e) by hand: both PPO seeds against the one DAgger start, per cell of the held-out family (2 multipliers x 1 seed).
    rows = result["per_family"]["char-lm"]["rows"]
    diffs = [math.log(rows[f"PPO s{s}"]["per_multiplier"][m]["test_losses"][0] / rows["DAgger (start)"]["per_multiplier"][m]["test_losses"][0])
             for s in (0, 1) for m in ("1", "10")]
    stat = report["comparisons"]["(e) PPO vs its DAgger start"]["held-out"]
    assert stat["cells"] == 4 and stat["mean"] == pytest.approx(float(np.mean(diffs)))
    assert stat["per_seed"] == pytest.approx([float(np.mean(diffs[:2])), float(np.mean(diffs[2:]))])
    assert stat["verdict"] == verdict(stat)
    # An ablation pairs PPO's seed 0 with the arm's seed 0 only; a seeded one runs at every PPO seed, paired seed by seed.
    assert report["comparisons"]["PPO vs (a) random init"]["training"]["cells"] == 2
    stability = report["comparisons"]["PPO vs (b) no stability term"]["training"]
    assert stability["cells"] == 4 and len(stability["per_seed"]) == 2
    assert json.loads((tmp_path / "claims" / "no-stability" / "seed-1" / "policy.json").read_text())["ppo_config"]["seed"] == 1
    assert "no-stability: every PPO seed" in path.read_text() and "benchmark suite (1 evaluation seeds" in path.read_text()
    # The benchmark curve of seed 0: the start, its one snapshot strictly inside the run (iteration 1), the final policy.
    curve = report["benchmark_curve"]["s0"]
    labels = ["DAgger (start)", "PPO s0 iteration 1", "PPO s0"]
    assert curve["iterations"] == [0, 1, 2] and set(report["benchmark_curve"]) == {"s0"}
    for split in ("training", "held-out"):
        assert curve[split] == [result["summary_by_split"][split][label]["mean_excess"] for label in labels]
    assert report["policies"]["PPO s0 iteration 1"].endswith("iteration-0001.safetensors")
    assert (tmp_path / "out" / "ppo_benchmark_curve.png").stat().st_size > 10_000 and "| s0 | held-out |" in path.read_text()
    # The validation table: each PPO seed's validation.csv, as a loss ratio - 1, and their mean.
    rows = list(csv.DictReader((tmp_path / "claims" / "ppo" / "seed-1" / "validation.csv").open()))
    assert report["validation_change"]["s1"] == {str(int(r["iteration"])): pytest.approx(math.expm1(float(r["change_vs_start"]))) for r in rows}
    assert set(report["validation_change"]["s1"]) == {"0", "1", "2"} and "| mean of seeds |" in path.read_text()
    # Early safety is PPO's own log: diverged + spiked runs of the first iterations.
    log = (tmp_path / "claims" / "random-init" / "seed-0" / "ppo_log.csv").read_text().splitlines()
    header = log[0].split(",")
    expected = [int(r.split(",")[header.index("diverged")]) + int(r.split(",")[header.index("spiked")]) for r in log[1:3]]
    assert report["early_safety"]["(a) random init"]["s0"] == expected
    # Every stage is a benchmark contender; the random-init and W = 1 arms have the DAgger policy's controls but W.
    assert {"BC", "DAgger (start)", "PPO s0", "PPO s1", "(d) Subramanian et al. s0", "(c) start: BC with W = 1"} <= set(result["summary"])
    from learned_lr.policy import load_policy

    # The validation-chosen snapshot is scored unless it is the start (iteration 0), the end or a curve seed's snapshot
    # (seed 0's iteration 1), each scored already: never the same actor twice under two labels.
    for seed, iteration in report["validation_best_iteration"].items():
        chosen = load_policy(tmp_path / "claims" / "ppo" / f"seed-{seed[1:]}" / "best_policy.safetensors")
        scored_once = 0 < iteration < 2 and seed != "s0"
        assert chosen.meta["iteration"] == iteration and (f"PPO validation-best {seed}" in result["summary"]) == scored_once
    assert "PPO validation-best s0" not in result["summary"] and "PPO s0 iteration 1" in result["summary"]
    assert set(report["validation_best_iteration"]) == {"s0", "s1"}

    start = load_policy(report["policies"]["DAgger (start)"])
    single = load_policy(report["policies"]["(c) single-step observation s0"])
    assert single.control_config.window == 1 and single.control_config.decision_interval == start.control_config.decision_interval
    assert load_policy(report["policies"]["(a) random init s0"]).control_config == start.control_config
    text = path.read_text()
    assert "| (e) PPO vs its DAgger start | held-out |" in text and (tmp_path / "out" / "il_ppo_result.png").stat().st_size > 10_000
    assert (tmp_path / "out" / "ppo_curve.png").stat().st_size > 10_000
    # A rerun trains and runs nothing again (every PPO run and cell reused): same report.
    run_claims(config, progress=False)
    assert json.loads((tmp_path / "out" / "claims.json").read_text())["comparisons"] == report["comparisons"]
    # The longer-runs lever is PPO's run but for the rollouts' length (x2), at the same seed.
    import dataclasses

    from learned_lr.experiments.claims import ppo_configs

    runs = ppo_configs(dataclasses.replace(config, levers="long-runs"))
    (longer,), ppo = runs["PPO + runs twice as long"], runs["PPO"][0]
    assert longer.run_length_scale == 2.0 and ppo.run_length_scale == 1.0
    assert dataclasses.replace(longer, run_length_scale=1.0, out=ppo.out) == ppo


def test_claims_refuses_bad_input_in_one_line(tmp_path, capsys):
    assert main(["claims", "--general-work", str(tmp_path / "none"), "--work", str(tmp_path / "w"), "--out", str(tmp_path / "o")]) == 1
    assert "no finished general-train recipe" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="arms"):
        ClaimsConfig(arms="ppo-magic")
    with pytest.raises(ConfigError, match="levers"):
        ClaimsConfig(levers="bigger-lr")
    with pytest.raises(ConfigError, match="strong-kl is not among"):
        ClaimsConfig(levers="final-reward", seeded_arms="strong-kl")
    with pytest.raises(ConfigError, match="families"):
        ClaimsConfig(families="imagenet")
    with pytest.raises(ConfigError, match="seed 2 is not among --seeds"):
        ClaimsConfig(seeds="0,1", curve_seeds="2")
    assert verdict({"mean": 0.0, "ci": math.nan}) == "not separable at this budget"
