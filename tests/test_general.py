"""The general policy's split, variant distribution, per-variant oracle sweeps and the general-train pipeline."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest

from learned_lr.checkpoint import load_checkpoint
from learned_lr.cli import main
from learned_lr.experiments.general import GeneralTrainConfig, run_general_training
from learned_lr.experiments.suites import FAMILY_NAMES
from learned_lr.files import file_sha256
from learned_lr.policy import load_policy
from learned_lr.settings import ConfigError
from learned_lr.tasks.config import LR_SWEEP_GRIDS
from learned_lr.training import distribution
from learned_lr.training.distribution import HELD_OUT_FAMILIES, TRAINING_FAMILIES, Variant, sample_variants, tune_variant


def test_the_split_is_disjoint_and_covers_every_benchmark_family():
    assert not set(TRAINING_FAMILIES) & set(HELD_OUT_FAMILIES)
    assert set(FAMILY_NAMES) <= set(TRAINING_FAMILIES) | set(HELD_OUT_FAMILIES)
    assert {"mnist-resnet18", "llm-lora"} <= set(HELD_OUT_FAMILIES)


def test_variants_are_reproducible_varied_and_only_of_training_families():
    variants = sample_variants(per_family=4, min_steps=150, max_steps=1000, seed=0)
    assert len(variants) == 20 and {v.task.task for v in variants} == set(TRAINING_FAMILIES)
    assert variants == sample_variants(per_family=4, min_steps=150, max_steps=1000, seed=0)
    assert [v.name for v in variants] != [v.name for v in sample_variants(per_family=4, min_steps=150, max_steps=1000, seed=1)]
    assert len({v.name for v in variants}) == 20
    assert all(150 <= v.steps <= 1000 for v in variants)
    assert {v.task.optimizer for v in variants} == {"sgd", "adam", "adamw"}
    assert len({v.task.batch_size for v in variants}) > 1
    assert all(v.task.val_batch_size <= 64 for v in variants if v.task.task == "diabetes")
    # each family's variants have distinct ordinals, so distinct seed blocks
    for family in TRAINING_FAMILIES:
        assert sorted(v.ordinal for v in variants if v.task.task == family) == [0, 1, 2, 3]
    with pytest.raises(ValueError, match="per_family"):
        sample_variants(per_family=10, min_steps=150, max_steps=1000, seed=0)


def _digits_variant(steps: int = 30) -> Variant:
    return dataclasses.replace(sample_variants(1, 20, 20, seed=0)[3], steps=steps, name="digits-test")


def test_init_scale_and_data_fraction_draws_leave_the_other_draws_alone():
    plain = sample_variants(3, 100, 1000, seed=4)
    extra = sample_variants(3, 100, 1000, seed=4, init_scales=(0.5, 2.0), train_fractions=(0.1, 1.0))
    assert [dataclasses.replace(v.task, init_scale=1.0, train_fraction=1.0) for v in extra] == [v.task for v in plain]
    assert [v.steps for v in extra] == [v.steps for v in plain]
    assert {v.task.init_scale for v in extra} == {0.5, 2.0} and {v.task.train_fraction for v in extra} == {0.1, 1.0}
    for v, p in zip(extra, plain):
        assert v.name == f"{p.name}-s{v.task.init_scale:g}-f{v.task.train_fraction:g}"
    assert [v.name for v in sample_variants(3, 100, 1000, seed=4, init_scales=(0.5, 2.0), train_fractions=(0.1, 1.0))] == [v.name for v in extra]
    # Only one of the two: only its suffix.
    assert all(v.name.endswith(("-s0.5", "-s2")) for v in sample_variants(1, 100, 1000, seed=4, init_scales=(0.5, 2.0)))


def test_depth_draws_deepen_only_the_mlp_families_and_leave_the_other_draws_alone():
    plain = sample_variants(4, 300, 3000, seed=0)
    deep = sample_variants(4, 300, 3000, seed=0, depths=(1, 2, 3))
    assert [dataclasses.replace(v.task, mlp_layers=1) for v in deep] == [v.task for v in plain] and [v.steps for v in deep] == [v.steps for v in plain]
    mlps = [v for v in deep if v.task.task in ("mnist-mlp", "digits", "diabetes")]
    assert {v.task.mlp_layers for v in mlps} == {1, 2, 3}
    assert all(v.task.mlp_layers == 1 and v.name == p.name for v, p in zip(deep, plain) if v.task.task in ("mnist-cnn", "mnist1d"))
    assert all(v.name == f"{p.name}-d{v.task.mlp_layers}" for v, p in zip(deep, plain) if v in mlps)
    assert deep == sample_variants(4, 300, 3000, seed=0, depths=(1, 2, 3))
    with pytest.raises(ConfigError, match="--depths: every depth must be in 1..8"):
        GeneralTrainConfig(depths="1,9")


def test_batch_norm_draws_leave_the_other_draws_alone():
    plain = sample_variants(4, 300, 3000, seed=0)
    normed = sample_variants(4, 300, 3000, seed=0, batch_norm_fraction=0.5)
    assert [dataclasses.replace(v.task, batch_norm=False) for v in normed] == [v.task for v in plain]
    assert [v.steps for v in normed] == [v.steps for v in plain]
    flags = [v.task.batch_norm for v in normed]
    assert 5 <= sum(flags) <= 15  # 20 draws at 1/2
    assert all(v.name == p.name + ("-bn" if v.task.batch_norm else "") for v, p in zip(normed, plain))
    assert normed == sample_variants(4, 300, 3000, seed=0, batch_norm_fraction=0.5)
    assert all(v.task.batch_norm for v in sample_variants(2, 300, 3000, seed=0, batch_norm_fraction=1.0))
    with pytest.raises(ConfigError, match="--batch-norm-fraction: must be in"):
        GeneralTrainConfig(batch_norm_fraction=1.5)


def test_batch_norm_copies_keep_every_plain_variant_and_add_a_normed_twin():
    plain = sample_variants(4, 300, 3000, seed=0)
    doubled = sample_variants(4, 300, 3000, seed=0, batch_norm_copies=True)
    assert [v for v in doubled if not v.task.batch_norm] == plain
    twins = [v for v in doubled if v.task.batch_norm]
    assert [v.name for v in twins] == [p.name + "-bn" for p in plain]
    assert [(v.ordinal, v.steps, dataclasses.replace(v.task, batch_norm=False)) for v in twins] == [(p.ordinal, p.steps, p.task) for p in plain]
    assert [v.name for v in doubled[:2]] == [plain[0].name, plain[0].name + "-bn"]  # each twin right after its plain variant
    # With some variants drawn with batch norm already, only the plain ones get a twin: no name twice.
    mixed = sample_variants(4, 300, 3000, seed=0, batch_norm_fraction=0.5, batch_norm_copies=True)
    assert len({v.name for v in mixed}) == len(mixed) == 20 + sum(not v.task.batch_norm for v in sample_variants(4, 300, 3000, seed=0, batch_norm_fraction=0.5))


def test_structure_copies_keep_every_plain_variant_and_add_one_changed_twin_of_each():
    from learned_lr.training.distribution import STRUCTURE_COPIES

    plain = sample_variants(4, 300, 3000, seed=0)
    doubled = sample_variants(4, 300, 3000, seed=0, structure_copies=True)
    assert doubled[0::2] == plain  # each copy right after its plain variant, the plain ones unchanged
    for original, copy in zip(plain, doubled[1::2]):
        changed = {k for k in ("mlp_layers", "init_scale", "train_fraction") if getattr(copy.task, k) != getattr(original.task, k)}
        assert len(changed) == 1, (original.name, copy.name)
        kind = changed.pop()
        assert getattr(copy.task, kind) in STRUCTURE_COPIES[kind]
        assert kind != "mlp_layers" or copy.task.task in ("mnist-mlp", "digits", "diabetes")  # the CNNs keep their layers
        assert copy.name == original.name + {"mlp_layers": "-d", "init_scale": "-s", "train_fraction": "-f"}[kind] + f"{getattr(copy.task, kind):g}"
        assert (copy.ordinal, copy.steps) == (original.ordinal, original.steps)
    # Each family's copies take the kinds in turn: an MLP family's first three copies are one of each kind.
    digits = [v for v in doubled[1::2] if v.task.task == "digits"]
    kinds = [("deeper" if v.task.mlp_layers > 1 else "init" if v.task.init_scale != 1 else "data") for v in digits]
    assert sorted(kinds[:3]) == ["data", "deeper", "init"] and kinds[3] == kinds[0]
    assert len({v.name for v in doubled}) == 40
    with pytest.raises(ValueError, match="cannot be combined"):
        sample_variants(4, 300, 3000, seed=0, structure_copies=True, depths=(1, 2))
    with pytest.raises(ConfigError, match="--structure-copies: copies are made"):
        GeneralTrainConfig(structure_copies=True, init_scales="0.5,1")


def test_copy_kinds_deep_and_zero_head_add_those_twins_and_keep_the_plain_variants():
    from learned_lr.training.distribution import COPY_KINDS

    plain = sample_variants(4, 300, 3000, seed=0)
    doubled = sample_variants(4, 300, 3000, seed=0, structure_copies=True, copy_kinds=("deep", "zero-head"))
    assert doubled[0::2] == plain
    deep = [v for v in doubled[1::2] if v.task.mlp_layers > 1]
    zero = [v for v in doubled[1::2] if v.task.zero_head]
    assert len(deep) + len(zero) == 20 and not {v.name for v in deep} & {v.name for v in zero}
    assert all(v.task.task in ("mnist-mlp", "digits", "diabetes") and v.task.mlp_layers in COPY_KINDS["deep"][1] for v in deep)
    assert all(v.name.endswith(f"-d{v.task.mlp_layers}") for v in deep) and all(v.name.endswith("-z") for v in zero)
    # The CNN families have no depth to change: all their twins have a zero head; an MLP family's alternate.
    assert sum(v.task.task in ("mnist-cnn", "mnist1d") for v in zero) == 8
    assert sorted(v.task.zero_head for v in doubled[1::2] if v.task.task == "digits") == [False, False, True, True]
    # The default kinds are the named default: the same draw as before copy_kinds existed.
    assert sample_variants(4, 300, 3000, seed=0, structure_copies=True, copy_kinds=("depth", "init-scale", "data")) == \
        sample_variants(4, 300, 3000, seed=0, structure_copies=True)
    # A kind that applies to no variant of a family leaves that family's variants without twins, not a crash.
    deep_only = sample_variants(4, 300, 3000, seed=0, structure_copies=True, copy_kinds=("deep",))
    assert len(deep_only) == 32 and {v.task.task for v in deep_only if v.task.mlp_layers > 1} == {"mnist-mlp", "digits", "diabetes"}
    with pytest.raises(ValueError, match="copy_kinds must be distinct names"):
        sample_variants(4, 300, 3000, seed=0, structure_copies=True, copy_kinds=("wide",))
    with pytest.raises(ConfigError, match="--copy-kinds: needs --structure-copies"):
        GeneralTrainConfig(copy_kinds="deep")
    with pytest.raises(ConfigError, match="--copy-kinds: unknown value"):
        GeneralTrainConfig(structure_copies=True, copy_kinds="deep,wide")
    with pytest.raises(ConfigError, match="--copy-kinds: names a kind twice"):
        GeneralTrainConfig(structure_copies=True, copy_kinds="deep,deep")
    assert GeneralTrainConfig(structure_copies=True).copy_kind_list == ["depth", "init-scale", "data"]


def test_stratified_optimizers_give_every_family_each_optimizer_and_keep_the_other_draws():
    from learned_lr.training.distribution import ADAMW_WEIGHT_DECAY, VARIANT_OPTIMIZERS

    plain = sample_variants(4, 100, 1000, seed=1)
    stratified = sample_variants(4, 100, 1000, seed=1, stratify_optimizers=True)
    # Seed 1's independent draws leave mnist-cnn and digits without SGD (what docs/results.md section 7 reports).
    assert not any(v.task.optimizer == "sgd" for v in plain if v.task.task in ("mnist-cnn", "digits"))
    for family in TRAINING_FAMILIES:
        assert {v.task.optimizer for v in stratified if v.task.task == family} == set(VARIANT_OPTIMIZERS)
    for v, p in zip(stratified, plain):
        assert (v.steps, v.task.batch_size, v.task.hidden, v.task.width) == (p.steps, p.task.batch_size, p.task.hidden, p.task.width)
        assert v.task.weight_decay == (ADAMW_WEIGHT_DECAY if v.task.optimizer == "adamw" else 0.0)


def test_tune_variant_picks_the_lowest_validation_loss_and_caches(tmp_path, monkeypatch):
    variant = _digits_variant()
    assert variant.task.task == "digits"
    result = tune_variant(variant, tmp_path, grid_points=3)
    grid = result["grid"]
    assert set(grid) == set(distribution.ORACLE_SHAPES)
    best = min((score, shape, lr) for shape in grid for lr, score in grid[shape].items() if score is not None)
    assert (result["shape"], result["lr"], result["score"]) == (best[1], float(best[2]), best[0])
    assert all(float(lr) in LR_SWEEP_GRIDS[variant.task.optimizer] or len(grid[shape]) > 3 for shape in grid for lr in grid[shape])

    def no_training(*args, **kwargs):
        raise AssertionError("a cached sweep trained again")

    monkeypatch.setattr(distribution, "_final_val_losses", no_training)
    assert tune_variant(variant, tmp_path, grid_points=3) == result
    with pytest.raises(AssertionError, match="trained again"):  # another setting is not the cached one
        tune_variant(dataclasses.replace(variant, steps=31), tmp_path, grid_points=3)


def test_tune_variant_extends_the_grid_at_an_edge(tmp_path, monkeypatch):
    calls = []

    def falling_with_lr(variant, shape, lrs, seeds=()):
        calls.append(list(lrs))
        return [1.0 / lr for lr in lrs]  # the highest LR always wins

    monkeypatch.setattr(distribution, "_final_val_losses", falling_with_lr)
    variant = _digits_variant()
    result = tune_variant(variant, tmp_path, grid_points=3)
    top = max(LR_SWEEP_GRIDS[variant.task.optimizer][1:4])
    assert result["lr"] == pytest.approx(top * 10)  # two 1-3-10 steps above the grid's top
    assert len(calls) == 2 * (1 + distribution.SWEEP_EXTENSIONS)


def test_a_two_seed_sweep_scores_each_lr_by_the_mean_of_its_seeds_and_is_cached_apart(tmp_path):
    variant = _digits_variant()
    seeds = variant.sweep_seed_list(2)
    assert seeds == [variant.sweep_seed, variant.sweep_seed + 1]
    lrs = [0.01, 0.1]
    alone = [distribution._final_val_losses(variant, "cosine", lrs, [seed]) for seed in seeds]
    assert alone[0] == distribution._final_val_losses(variant, "cosine", lrs)  # one seed: the sweep every earlier result used
    assert all(abs(a - b) > 1e-6 for a, b in zip(*alone))  # the two seeds are different runs
    together = distribution._final_val_losses(variant, "cosine", lrs, seeds)
    assert together == pytest.approx([(a + b) / 2 for a, b in zip(*alone)], rel=1e-5)

    one = tune_variant(variant, tmp_path, grid_points=3)
    two = tune_variant(variant, tmp_path, grid_points=3, sweep_seeds=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"{variant.name}-seeds2.json", f"{variant.name}.json"]
    assert two["grid"] != one["grid"] and tune_variant(variant, tmp_path, grid_points=3) == one  # neither overwrote the other
    with pytest.raises(ValueError, match="sweep_seeds"):
        tune_variant(variant, tmp_path, grid_points=3, sweep_seeds=0)


def test_general_train_runs_every_stage_labels_the_tuned_lr_and_resumes(tmp_path, capsys):
    config = GeneralTrainConfig(variants_per_family=1, min_steps=20, max_steps=30, sweep_points=2, demo_runs=3, bc_epochs=1,
                                dagger_rounds=1, dagger_runs=2, ppo_runs=2, work=str(tmp_path / "g"))
    paths = run_general_training(config, progress=False)
    assert sorted(paths) == ["bc", "dagger-1"]
    policy = load_policy(paths["dagger-1"])
    assert policy.control_config.max_lr_factor == 25.0 and policy.control_config.decision_interval == 16
    # Every demonstration is of a training family, and its labels ask for the same LR whatever the
    # run's base LR: the oracle's shape at the variant's tuned LR.
    _, meta = load_checkpoint(tmp_path / "g" / "dagger" / "round-1" / "data" / "demos.safetensors", kind="demonstrations")
    assert len(meta["runs"]) == 5 * 3 + 5 * 2
    variants = {v["name"]: v for v in json.loads((tmp_path / "g" / "variants.json").read_text())}
    assert {v["task"]["task"] for v in variants.values()} == set(TRAINING_FAMILIES)
    name = next(iter(variants))
    tensors, demo_meta = load_checkpoint(tmp_path / "g" / "demos" / name / "demos.safetensors", kind="demonstrations")
    low, high = math.log(1e-3), math.log(25.0)
    asked = []
    for index, run in enumerate(demo_meta["runs"]):
        labels = tensors[f"{index}.labels"].numpy()
        asked.append(np.where((labels > low + 1e-4) & (labels < high - 1e-4), np.exp(labels) * run["peak_lr"], np.nan))
    base_lrs = [run["peak_lr"] for run in demo_meta["runs"]]
    assert max(base_lrs) / min(base_lrs) > 1.5
    asked = np.array(asked)
    both = ~np.isnan(asked).any(axis=0)
    assert both.any()
    np.testing.assert_allclose(asked[:, both], np.broadcast_to(asked[:1, both], asked[:, both].shape), rtol=1e-4)
    assert float(np.nanmax(asked)) <= variants[name]["oracle_lr"] * (1 + 1e-4)
    # A rerun trains nothing; another recipe in the same folder is refused; one more DAgger round continues.
    stamp = paths["dagger-1"].stat().st_mtime_ns
    assert run_general_training(config, progress=False) == paths and paths["dagger-1"].stat().st_mtime_ns == stamp
    with pytest.raises(ConfigError, match="another recipe"):
        run_general_training(dataclasses.replace(config, demo_runs=4), progress=False)
    assert main(["general-train", "--variants-per-family", "1", "--min-steps", "20", "--max-steps", "30", "--sweep-points", "2",
                 "--demo-runs", "3", "--bc-epochs", "1", "--dagger-rounds", "2", "--dagger-runs", "2", "--ppo-iterations", "2",
                 "--ppo-runs", "2", "--work", str(tmp_path / "g")]) == 0
    out = capsys.readouterr().out
    assert "dagger-2:" in out and "learned-lr benchmark --suite small --policies" in out and paths["dagger-1"].stat().st_mtime_ns == stamp
    # PPO ran from the last DAgger round across the variants (one per iteration, training families only).
    _, ppo_meta = load_checkpoint(tmp_path / "g" / "ppo" / "policy.safetensors", kind="policy")
    assert ppo_meta["trained_by"] == "ppo" and ppo_meta["ppo_config"]["variants"] == str(tmp_path / "g" / "variants.json")
    assert ppo_meta["init_sha256"] == file_sha256(tmp_path / "g" / "dagger" / "round-2" / "bc" / "policy.safetensors")
    assert ppo_meta["final_iteration"]["iteration"] == 2 and "ppo:" in out


def test_general_train_is_bit_reproducible_from_its_command(tmp_path):
    """The same recipe in two fresh folders gives the same weights, bit for bit, and the same
    demonstrations: what lets the bundled policy be regenerated from the command recorded with it."""
    import torch

    config = GeneralTrainConfig(variants_per_family=1, min_steps=20, max_steps=30, sweep_points=2, demo_runs=2, bc_epochs=1,
                                dagger_rounds=1, dagger_runs=2, work=str(tmp_path / "a"))
    first = run_general_training(config, progress=False)
    second = run_general_training(dataclasses.replace(config, work=str(tmp_path / "b")), progress=False)
    for stage in ("bc", "dagger-1"):
        weights_a, _ = load_checkpoint(first[stage], kind="policy")
        weights_b, _ = load_checkpoint(second[stage], kind="policy")
        assert weights_a.keys() == weights_b.keys() and all(torch.equal(weights_a[k], weights_b[k]) for k in weights_a)
    demos_a, _ = load_checkpoint(tmp_path / "a" / "dagger" / "round-1" / "data" / "demos.safetensors", kind="demonstrations")
    demos_b, _ = load_checkpoint(tmp_path / "b" / "dagger" / "round-1" / "data" / "demos.safetensors", kind="demonstrations")
    assert demos_a.keys() == demos_b.keys() and all(torch.equal(demos_a[k], demos_b[k]) for k in demos_a)
    # --bc-seed: the same variants and demonstrations, another BC draw (so another policy); -1 is --seed's.
    other = run_general_training(dataclasses.replace(config, bc_seed=1, work=str(tmp_path / "c")), progress=False)
    assert (tmp_path / "a" / "variants.json").read_text() == (tmp_path / "c" / "variants.json").read_text()
    demos_c, _ = load_checkpoint(tmp_path / "c" / "bc" / "data" / "demos.safetensors", kind="demonstrations")
    demos_a0, _ = load_checkpoint(tmp_path / "a" / "bc" / "data" / "demos.safetensors", kind="demonstrations")
    assert all(torch.equal(demos_a0[k], demos_c[k]) for k in demos_a0)
    weights_a, _ = load_checkpoint(first["bc"], kind="policy")
    weights_c, _ = load_checkpoint(other["bc"], kind="policy")
    assert not all(torch.equal(weights_a[k], weights_c[k]) for k in weights_a)
    same, _ = load_checkpoint(run_general_training(dataclasses.replace(config, bc_seed=0, work=str(tmp_path / "d")), progress=False)["bc"],
                              kind="policy")
    assert all(torch.equal(weights_a[k], same[k]) for k in weights_a)


def test_general_train_reads_zero_start_layers_as_the_default_does_when_asked(tmp_path, capsys):
    """--distance-skips-zero-start / --grad-norms-skip-zero-start: the actor trains reading the layers that start at zero (a
    zero head's) as the default reads them when it is bundled, and carries that reading; without distance inputs the
    distance one is refused, the flag named."""
    config = GeneralTrainConfig(variants_per_family=1, min_steps=20, max_steps=20, sweep_points=2, demo_runs=1, bc_epochs=1,
                                dagger_rounds=0, inputs="all+distance", structure_copies=True, copy_kinds="zero-head",
                                distance_skips_zero_start=True, grad_norms_skip_zero_start=True, work=str(tmp_path / "g"))
    control = load_policy(run_general_training(config, progress=False)["bc"]).control_config
    assert control.distance_skips_zero_start and control.grad_norms_skip_zero_start and control.inputs == "all+distance"
    names = [v["name"] for v in json.loads((tmp_path / "g" / "variants.json").read_text())]
    assert len(names) == 10 and sum(name.endswith("-z") for name in names) == 5
    plain = dataclasses.replace(config, distance_skips_zero_start=False, grad_norms_skip_zero_start=False, work=str(tmp_path / "p"))
    assert not load_policy(run_general_training(plain, progress=False)["bc"]).control_config.grad_norms_skip_zero_start
    # On a zero-head variant the recorded features differ with the readings; on its plain twin they do not.
    for name, differs in ((names[1], True), (names[0], False)):
        skipped, _ = load_checkpoint(tmp_path / "g" / "demos" / name / "demos.safetensors", kind="demonstrations")
        read, _ = load_checkpoint(tmp_path / "p" / "demos" / name / "demos.safetensors", kind="demonstrations")
        features = [k for k in skipped if k.endswith(".features")]
        assert features and any(not np.array_equal(skipped[k].numpy(), read[k].numpy(), equal_nan=True) for k in features) == differs, name
    assert main(["general-train", "--distance-skips-zero-start", "--inputs", "all"]) == 2
    assert "--distance-skips-zero-start: needs inputs that read the distance" in capsys.readouterr().err


def test_general_train_refuses_bad_settings_in_one_line(capsys):
    assert main(["general-train", "--min-multiplier", "2"]) == 2
    assert "min_multiplier" in capsys.readouterr().err
    assert main(["general-train", "--variants-per-family", "12"]) == 2
    assert main(["general-train", "--train-fractions", "0.1,2"]) == 2
    assert "--train-fractions: every fraction must be in (0, 1]" in capsys.readouterr().err
    assert main(["general-train", "--init-scales", "0,1"]) == 2
    assert "--init-scales: every scale must be finite and > 0" in capsys.readouterr().err
    assert main(["general-train", "--bc-seed", "-2"]) == 2
    assert "--bc-seed: must be in 0..99, or -1" in capsys.readouterr().err


def test_general_train_under_a_dense_start_collects_and_clones_at_that_cadence(tmp_path, capsys):
    """--start-decision-interval/--start-steps: demonstrations decide on the dense start's steps and every stage's
    policy carries it, so the actor trains at the cadence it will be bundled at."""
    config = GeneralTrainConfig(variants_per_family=1, min_steps=40, max_steps=40, sweep_points=2, demo_runs=1, bc_epochs=1,
                                dagger_rounds=1, dagger_runs=1, decision_interval=16, start_decision_interval=4, start_steps=16,
                                work=str(tmp_path / "g"))
    paths = run_general_training(config, progress=False)
    control = load_policy(paths["dagger-1"]).control_config
    assert (control.decision_interval, control.start_decision_interval, control.start_steps) == (16, 4, 16)
    variant = json.loads((tmp_path / "g" / "variants.json").read_text())[0]["name"]
    tensors, _ = load_checkpoint(tmp_path / "g" / "demos" / variant / "demos.safetensors", kind="demonstrations")
    assert tensors["0.decision_steps"].tolist() == [0, 1, 5, 9, 13, 17, 33]
    assert main(["general-train", "--start-steps", "16"]) == 2
    assert "--start-decision-interval and --start-steps together" in capsys.readouterr().err


def test_general_train_with_the_momentum_cosines(tmp_path):
    """The policy that reads the gradient-momentum cosines trains through every stage (rollouts record them)."""
    config = GeneralTrainConfig(variants_per_family=1, min_steps=20, max_steps=20, sweep_points=2, demo_runs=2, bc_epochs=1,
                                dagger_rounds=1, dagger_runs=2, inputs="all+momentum", near_tuned_fraction=0.5, work=str(tmp_path / "g"))
    paths = run_general_training(config, progress=False)
    assert load_policy(paths["dagger-1"]).control_config.inputs == "all+momentum"
    # near_tuned_fraction: one of each variant's two demonstration runs is within 2x of its tuned LR.
    for variant in json.loads((tmp_path / "g" / "variants.json").read_text()):
        _, demo_meta = load_checkpoint(tmp_path / "g" / "demos" / variant["name"] / "demos.safetensors", kind="demonstrations")
        ratio = demo_meta["runs"][0]["peak_lr"] / variant["oracle_lr"]
        assert 0.5 <= ratio <= 2.0, ratio
    tensors, meta = load_checkpoint(tmp_path / "g" / "dagger" / "round-1" / "data" / "demos.safetensors", kind="demonstrations")
    features = [tensors[f"{i}.features"].numpy() for i in range(len(meta["runs"]))]
    assert all(f.shape[1] == 11 for f in features)
    assert all(np.abs(f[2:, 8:11]).max() > 0 for f in features)  # every run recorded real cosines


def test_general_train_with_the_run_length_and_demonstrations_at_several_lengths(tmp_path):
    """--demo-length-factors: each variant's demonstrations at its length x each factor (within the recipe's range,
    each length once), labelled by its oracle; the policy reads the run's length; a bad factor is refused."""
    config = GeneralTrainConfig(variants_per_family=1, min_steps=20, max_steps=32, sweep_points=2, demo_runs=1, bc_epochs=1,
                                dagger_rounds=0, inputs="all+distance+length", demo_length_factors="0.5,1,2", work=str(tmp_path / "g"))
    assert config.demo_lengths(24) == [20, 24, 32] and config.demo_lengths(20) == [20, 32]
    assert dataclasses.replace(config, demo_length_factors="").demo_lengths(24) == [24]
    paths = run_general_training(config, progress=False)
    assert load_policy(paths["bc"]).control_config.inputs == "all+distance+length"
    for variant in json.loads((tmp_path / "g" / "variants.json").read_text()):
        _, meta = load_checkpoint(tmp_path / "g" / "demos" / variant["name"] / "demos.safetensors", kind="demonstrations")
        assert sorted({run["total_steps"] for run in meta["runs"]}) == config.demo_lengths(variant["steps"])
    with pytest.raises(ConfigError, match="--demo-length-factors: every factor must be finite and > 0"):
        GeneralTrainConfig(demo_length_factors="1,0")
