"""Config dataclasses: a pipeline passes on the stages' own defaults, and bad combinations are refused by name."""

import pytest

from learned_lr.experiments.config import ImitateConfig
from learned_lr.settings import ConfigError, ControlConfig, PolicyConfig
from learned_lr.training.config import BCConfig, CollectConfig, PPOConfig


def test_imitate_passes_on_exactly_the_stages_defaults():
    assert ImitateConfig().collect_config() == CollectConfig()
    assert ImitateConfig().bc_config() == BCConfig()
    changed = ImitateConfig(decision_interval=32, epochs=3, runs_per_setting=2)
    assert changed.collect_config().control.decision_interval == 32 and changed.collect_config().runs_per_setting == 2
    assert changed.bc_config().epochs == 3


@pytest.mark.parametrize("changes, field", [({"epochs": 0}, "epochs"), ({"total_steps": "300,1"}, "total_steps"),
                                            ({"decision_interval": 0}, "decision_interval"), ({"mlp_seeds": 0}, "mlp_seeds")])
def test_imitate_checks_each_setting_where_its_stage_does(changes, field):
    with pytest.raises(ConfigError) as caught:
        ImitateConfig(**changes)
    assert caught.value.field == field


def test_ppo_takes_a_shape_only_for_a_random_init():
    assert PPOConfig(init="random", control=ControlConfig(window=64), policy=PolicyConfig(patch=8)).control.window == 64
    with pytest.raises(ConfigError) as caught:
        PPOConfig(init="runs/bc/policy.safetensors", control=ControlConfig(window=64))
    assert caught.value.field == "init"


def test_the_rise_limit_is_validated_and_kept_out_of_cache_settings_when_unset():
    """A result cached before ``max_lr_rise`` existed keeps its setting; one made under a limit never matches it."""
    from learned_lr.settings import ConfigError, ControlConfig, config_setting
    from learned_lr.training.config import CollectConfig

    assert "max_lr_rise" not in ControlConfig().setting() and ControlConfig(max_lr_rise=4).setting()["max_lr_rise"] == 4
    assert "max_lr_rise" not in config_setting(CollectConfig())["control"]
    assert config_setting(CollectConfig(control=ControlConfig(max_lr_rise=4))) != config_setting(CollectConfig())
    from learned_lr.experiments.general import GeneralTrainConfig

    for bad in (1.0, 0.5, -2.0, float("inf"), float("nan")):
        with pytest.raises(ConfigError, match="max-lr-rise"):
            ControlConfig(max_lr_rise=bad)
        with pytest.raises(ConfigError, match="max-lr-rise"):
            GeneralTrainConfig(max_lr_rise=bad)


def test_a_rise_span_needs_a_rise_limit_and_is_kept_out_of_cache_settings_when_unset():
    from learned_lr.settings import ConfigError, ControlConfig

    assert "rise_span_fraction" not in ControlConfig(max_lr_rise=4).setting()
    assert ControlConfig(max_lr_rise=4, rise_span_fraction=0.125).setting()["rise_span_fraction"] == 0.125
    for bad in ({"rise_span_fraction": 0.125}, {"max_lr_rise": 4, "rise_span_fraction": 1.5},
                {"max_lr_rise": 4, "rise_span_fraction": -0.1}, {"max_lr_rise": 4, "rise_span_fraction": float("nan")}):
        with pytest.raises(ConfigError, match="rise-span-fraction"):
            ControlConfig(**bad)
    with pytest.raises(ConfigError, match="rise-span-while-falling"):
        ControlConfig(max_lr_rise=4, rise_span_while_falling=True)
    assert "rise_span_while_falling" not in ControlConfig(max_lr_rise=4, rise_span_fraction=0.25).setting()


def test_a_dense_start_needs_both_of_its_settings_and_is_kept_out_of_cache_settings_when_unset():
    assert ControlConfig(start_decision_interval=16, start_steps=256).setting()["start_steps"] == 256
    assert not {"start_decision_interval", "start_steps"} & set(ControlConfig().setting())
    for interval, steps in ((16, 0), (0, 256), (-1, 256), (16, -5)):
        with pytest.raises(ConfigError):
            ControlConfig(start_decision_interval=interval, start_steps=steps)
