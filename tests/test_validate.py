"""`learned-lr validate`: the same validation runs for every policy, tuned-expert excess, paired differences, caching."""

from __future__ import annotations

import math

import numpy as np
import pytest

from learned_lr.cli import main
from learned_lr.experiments import validate
from learned_lr.experiments.validate import ValidateConfig, markdown_report, run_validation
from learned_lr.settings import ConfigError
from learned_lr.training import validation as validation_runs
from learned_lr.training.distribution import TRAINING_FAMILIES

SMALL = dict(variants_per_family=1, min_steps=24, max_steps=32, sweep_points=2, multipliers="0.3,3", depths="", init_scales="",
             train_fractions="")


@pytest.fixture(scope="module")
def small_result(tmp_path_factory):
    work = tmp_path_factory.mktemp("validate")
    config = ValidateConfig(policies="default=bundled,again=default,general=general", work=str(work), **SMALL)
    return config, run_validation(config, progress=False)


def test_every_policy_runs_every_variant_at_every_multiplier_against_a_tuned_expert(small_result):
    _, result = small_result
    assert result["families"] == list(TRAINING_FAMILIES) and len(result["variants"]) == 5
    for label in ("default", "again", "general"):
        runs = result["runs"][label]
        assert [len(row) for row in runs] == [2] * 5
        assert all(math.isfinite(r["score"]) and math.isfinite(r["start"]) for row in runs for r in row)
    # the excess is the run's score minus the tuned expert's on the same variant and seed
    first = result["runs"]["general"][0][1]["score"] - result["experts"][0]["score"]
    row = result["policies"]["general"]
    assert row["per_family_multiplier"][TRAINING_FAMILIES[0]][1] == pytest.approx(first)
    assert row["mean_excess"] == pytest.approx(np.mean([r["score"] - e["score"] for rr, e in zip(result["runs"]["general"], result["experts"])
                                                        for r in rr]))
    # the same policy under two labels is the same runs: a paired difference of exactly zero, no variant better or worse
    same = result["policies"]["again"]["vs_reference"]
    assert (same["mean"], same["low"], same["high"], same["variants_better"], same["variants_worse"]) == (0.0, 0.0, 0.0, 0, 0)
    other = result["policies"]["general"]["vs_reference"]
    assert other["low"] <= other["mean"] <= other["high"] and other["mean"] != 0.0
    assert result["policy_sha256"]["default"] == result["policy_sha256"]["again"] != result["policy_sha256"]["general"]
    report = markdown_report(result)
    assert "| general |" in report and "Paired against `default`" in report and "| again | +0.0% |" in report
    # the LR each run spent, against its tuned expert's: recorded per run, summarized per multiplier
    assert all(0 < e["mean_lr"] <= v["oracle_lr"] for e, v in zip(result["experts"], result["variants"]))  # a schedule under its peak
    spent = [[r["mean_lr"] / e["mean_lr"] for r in row] for row, e in zip(result["runs"]["general"], result["experts"])]
    assert row["lr_vs_tuned"]["3"] == pytest.approx(math.exp(np.mean([math.log(x[1]) for x in spent])))
    assert result["policies"]["again"]["lr_vs_tuned"] == result["policies"]["default"]["lr_vs_tuned"]
    assert "The LR each policy spent" in report and f"| general | {row['lr_vs_tuned']['0.3']:.2f} |" in report


def test_a_rerun_reuses_every_run_and_another_setting_runs_again(small_result, monkeypatch):
    config, result = small_result

    def refuse(*args, **kwargs):
        raise AssertionError("a cached run was computed again")

    monkeypatch.setattr(validation_runs, "policy_runs", refuse)
    monkeypatch.setattr(validation_runs, "tuned_expert_run", refuse)
    again = run_validation(config, progress=False)
    assert again["runs"] == result["runs"] and again["experts"] == result["experts"]
    with pytest.raises(AssertionError, match="computed again"):  # other multipliers: other runs
        run_validation(ValidateConfig(**{**config.__dict__, "multipliers": "1"}), progress=False)


def test_a_failed_run_counts_and_its_start_stands_for_its_score():
    variants = [{"name": "a", "family": "digits"}]
    expert = [{"score": 0.0, "start": 1.0, "diverged": False}]
    runs = {"ref": [[{"score": 0.5, "start": 1.0, "diverged": False}, {"score": None, "start": 1.0, "diverged": True}]],
            "flat": [[{"score": 1.0, "start": 1.0, "diverged": False}, {"score": -0.5, "start": 1.0, "diverged": False}]]}
    out = validate.summarize(variants, expert, runs, [1.0, 10.0])["policies"]
    assert out["ref"]["failed_runs"] == 1 and out["flat"]["failed_runs"] == 1  # diverged; no lower than where it started
    assert out["ref"]["mean_excess"] == pytest.approx(0.75) and out["ref"]["worst_run"] == pytest.approx(1.0)
    assert out["flat"]["vs_reference"]["mean"] == pytest.approx(-0.5) and out["flat"]["vs_reference"]["variants_better"] == 1
    assert "lr_vs_tuned" not in out["ref"]  # runs saved before the LR was recorded: no comparison, no error


def test_the_lr_spent_is_the_geometric_mean_over_variants_of_each_runs_ratio_to_its_tuned_expert():
    variants = [{"name": "a", "family": "digits"}, {"name": "b", "family": "digits"}]
    experts = [{"score": 0.0, "start": 1.0, "diverged": False, "mean_lr": 0.1}, {"score": 0.0, "start": 1.0, "diverged": False, "mean_lr": 0.01}]
    run = lambda lr: {"score": 0.0, "start": 1.0, "diverged": False, "mean_lr": lr}
    out = validate.summarize(variants, experts, {"p": [[run(0.05), run(0.4)], [run(0.02), run(0.01)]]}, [0.1, 10.0])["policies"]["p"]
    assert out["lr_vs_tuned"]["0.1"] == pytest.approx(1.0)  # 0.5x on one variant, 2x on the other
    assert out["lr_vs_tuned"]["10"] == pytest.approx(2.0)  # 4x and 1x


def test_bad_input_is_refused_in_one_line(tmp_path, capsys):
    with pytest.raises(ConfigError, match="unique"):
        ValidateConfig(policies="a=bundled,a=general")
    with pytest.raises(ConfigError, match="multipliers"):
        ValidateConfig(multipliers="1,-3")
    code = main(["validate", "--policies", f"a={tmp_path / 'missing.safetensors'}", "--work", str(tmp_path / "w"),
                 "--out", str(tmp_path / "o")])
    assert code == 1 and "does not exist" in capsys.readouterr().err
    assert not (tmp_path / "w" / "sweeps").exists()  # refused before any sweep


def test_pooling_two_draws_pairs_every_variant_of_both_and_refuses_draws_of_other_policies(small_result):
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location("validation_pool", Path(__file__).parents[1] / "benchmarks" / "validation_pool.py")
    pool_module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(pool_module)
    config, result = small_result
    as_read = {**result, "setting": {"seed": config.seed}}
    other = {**as_read, "setting": {"seed": config.seed + 1}}
    pooled = pool_module.pool([as_read, other])
    assert len(pooled["variants"]) == 2 * len(result["variants"]) and pooled["variants"][0]["name"].startswith(f"{config.seed}/")
    for label in result["runs"]:  # the same draw twice: every mean is the draw's own, the failures count twice
        assert pooled["policies"][label]["mean_excess"] == pytest.approx(result["policies"][label]["mean_excess"])
        assert pooled["policies"][label]["failed_runs"] == 2 * result["policies"][label]["failed_runs"]
        assert pooled["policies"][label]["lr_vs_tuned"] == pytest.approx(result["policies"][label]["lr_vs_tuned"])
    assert pooled["policies"]["again"]["vs_reference"]["mean"] == 0.0
    assert "policy | mean excess" in "\n".join(pool_module.report(pooled))
    assert f"| general | {result['policies']['general']['lr_vs_tuned']['0.3']:.2f} |" in "\n".join(pool_module.report(pooled))
    fewer = {**other, "runs": {k: v for k, v in result["runs"].items() if k != "general"}}
    with pytest.raises(ValueError, match="same --policies"):
        pool_module.pool([as_read, fewer])
    kept = pool_module.pool([pool_module.only(as_read, ["default", "again"]), pool_module.only(fewer, ["default", "again"])])
    assert list(kept["policies"]) == ["default", "again"] and kept["policies"]["again"]["vs_reference"]["mean"] == 0.0  # --only
    with pytest.raises(ValueError, match="no runs of general"):
        pool_module.only(fewer, ["default", "general"])


def test_variants_no_lr_trains_are_left_out_of_the_trainable_view_and_its_rows_are_their_own(small_result, tmp_path, capsys):
    import importlib.util
    import json
    from pathlib import Path

    config, result = small_result
    assert all(validate.expert_trains(e) for e in result["experts"]) and "no LR trains them" not in markdown_report(result)
    # the second variant's tuned expert ends where it started (a deep SGD MLP at chance, say): left out of the view
    experts = [dict(e) for e in result["experts"]]
    experts[1]["score"] = experts[1]["start"] - 0.01
    flat = {**result, **validate.summarize(result["variants"], experts, result["runs"], result["multipliers"])}
    view = validate.trainable_only(flat)
    assert [v["name"] for v in view["variants"]] == [v["name"] for i, v in enumerate(result["variants"]) if i != 1]
    assert all(len(rows) == len(result["variants"]) - 1 for rows in view["runs"].values())
    kept = validate.summarize(view["variants"], view["experts"], view["runs"], result["multipliers"])
    by_hand = np.mean([r["score"] - e["score"] for i, (rows, e) in enumerate(zip(result["runs"]["general"], experts)) if i != 1 for r in rows])
    assert kept["policies"]["general"]["mean_excess"] == pytest.approx(by_hand)
    assert kept["policies"]["general"]["mean_excess"] != pytest.approx(flat["policies"]["general"]["mean_excess"])
    report = markdown_report(flat)
    assert f"1 of {len(result['variants'])} variants' tuned expert ends less than 5% below" in report
    assert f"| general | {validate.log_ratio_percent(kept['policies']['general']['mean_excess'])} |" in report.split("no LR trains them")[1]
    # the pooling script's --trainable-only reads the same view
    spec = importlib.util.spec_from_file_location("validation_pool", Path(__file__).parents[1] / "benchmarks" / "validation_pool.py")
    pool_module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(pool_module)
    draw = tmp_path / "validation.json"
    draw.write_text(json.dumps({**flat, "setting": {"seed": config.seed}}))
    pool_module.main(["--trainable-only", str(draw)])
    out = capsys.readouterr().out
    assert f"the variants whose tuned expert trains: {len(result['variants']) - 1}" in out
    assert f"| general | {validate.log_ratio_percent(kept['policies']['general']['mean_excess'])} |" in out


def test_a_family_subset_keeps_each_variants_seed_and_runs_and_a_held_out_family_is_refused(small_result):
    """`--families`: the kept variants are the whole draw's, on the same seeds, so their saved runs are reused as they are."""
    import dataclasses
    import json

    config, result = small_result
    part = run_validation(dataclasses.replace(config, families="digits,diabetes", policies="default=bundled"), progress=False)
    assert [v["family"] for v in part["variants"]] == ["digits", "diabetes"]
    where = {v["name"]: i for i, v in enumerate(result["variants"])}
    same = lambda x: json.loads(json.dumps(x))  # noqa: E731 - computed runs against the ones read back from disk
    for j, variant in enumerate(part["variants"]):
        assert same(part["runs"]["default"][j]) == same(result["runs"]["default"][where[variant["name"]]])
        assert same(part["experts"][j]) == same(result["experts"][where[variant["name"]]])
    zero = run_validation(dataclasses.replace(config, families="diabetes", policies="default=bundled", zero_head=True), progress=False)
    assert [v["name"] for v in zero["variants"]] == [part["variants"][1]["name"] + "-z"] and zero["variants"][0]["task"]["zero_head"]
    assert zero["runs"]["default"] != part["runs"]["default"][1:]  # another model: other runs
    with pytest.raises(ConfigError, match="held out"):
        ValidateConfig(families="mnist-mlp,llm-lora")
    with pytest.raises(ConfigError, match="depths"):
        ValidateConfig(depths="17")
