"""Settings every layer shares, and the helpers every stage config is built with.

``ControlConfig`` (how the policy sees a run and acts), ``PolicyConfig`` (its networks) and
``RewardConfig`` (the proposal's reward) are read by the library (``LearnedLR``, the policy,
``loop.DecisionLoop``) and by every training stage; each stage's own config sits beside its
stage (``tasks.config``, ``training.config``, ``experiments.config``, ``experiments.llm.config``).

The CLI (``learned_lr.cli``) builds its flags from these dataclasses' fields and ``help``
metadata, the library API takes them as arguments and the tests build them directly, so a
default lives in exactly one place. Each config validates itself in ``__post_init__`` and
raises ``ConfigError`` naming the offending field.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

from learned_lr.features import INPUT_CHOICES, reads_distance


class MissingExtraError(ImportError):
    """An optional dependency (a pip extra) is needed for what was asked; the message says which."""


TRAIN_EXTRA_MODULES = ("tqdm", "matplotlib", "scipy", "gymnasium")


def config_setting(config) -> dict:
    """``dataclasses.asdict(config)`` for a result cache's setting, with each field that says its own setting
    (a ``TaskConfig``: ``setting()`` leaves out the fields added since results were cached, at their defaults)."""
    out = dataclasses.asdict(config)
    for field_ in dataclasses.fields(config):
        value = getattr(config, field_.name)
        if hasattr(value, "setting"):
            out[field_.name] = value.setting()
    return out


def require_train_extra(what: str) -> None:
    """``MissingExtraError`` naming the ``train`` extra if one of its packages is not installed.

    The core install (``pip install learned-lr``) is only what ``LearnedLR`` needs; training the
    policy, the experiments and the command line need ``pip install 'learned-lr[train]'``.
    """
    import importlib.util

    missing = [name for name in TRAIN_EXTRA_MODULES if importlib.util.find_spec(name) is None]
    if missing:
        raise MissingExtraError(f"{what} needs the train extra: pip install 'learned-lr[train]' (missing: {', '.join(missing)})")


class ConfigError(ValueError):
    """A config value is invalid. ``field`` names the offending field (its CLI flag)."""

    def __init__(self, field_name: str, message: str):
        super().__init__(f"--{field_name.replace('_', '-')}: {message}")
        self.field = field_name


def arg(default, help: str, **kwargs):  # noqa: A002 - mirrors argparse's name
    """A dataclass field with a one-line help text the CLI shows."""
    if isinstance(default, (list, dict, set)):
        return field(default_factory=lambda: type(default)(default), metadata={"help": help, **kwargs})
    return field(default=default, metadata={"help": help, **kwargs})


def same_as(config_cls: type, name: str, help: str | None = None):  # noqa: A002
    """The field ``name`` of ``config_cls`` again (its default, choices and help unless ``help`` is given).

    For a pipeline's config that passes a setting on to a stage: the default stays defined once,
    in the stage's config, and cannot drift from it.
    """
    source = {f.name: f for f in dataclasses.fields(config_cls)}[name]
    default = source.default if source.default is not dataclasses.MISSING else source.default_factory()  # type: ignore[misc]
    extra = {k: v for k, v in source.metadata.items() if k != "help"}
    return arg(default, help or source.metadata["help"], **extra)


def require(condition: bool, field_name: str, message: str) -> None:
    if not condition:
        raise ConfigError(field_name, message)


def resolve_device(device: str) -> str:
    """cpu, cuda or auto -> the torch device; ``ConfigError`` if cuda is asked for and absent."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device", "cuda was asked for but torch sees no CUDA GPU here (use cpu or auto)")
    return device


def check_choice(value: str, choices: tuple[str, ...], field_name: str) -> None:
    require(value in choices, field_name, f"unknown value {value!r}; choose from {', '.join(choices)}")


def parse_list(text: str, field_name: str, cast, allowed: tuple[str, ...] | None = None, optional: bool = False) -> list:
    """'a,b,c' -> [cast(a), cast(b), cast(c)]; an empty text is refused, or gives [] if ``optional``."""
    items = [item.strip() for item in text.split(",") if item.strip()]
    if optional and not items:
        return []
    require(len(items) > 0, field_name, "give at least one value")
    try:
        values = [cast(item) for item in items]
    except ValueError:
        raise ConfigError(field_name, f"cannot parse {text!r}") from None
    if allowed is not None:
        bad = [v for v in values if v not in allowed]
        require(not bad, field_name, f"unknown value(s) {', '.join(map(str, bad))}; choose from {', '.join(allowed)}")
    return values


def labeled_paths(text: str, field_name: str) -> list[tuple[str, str]]:
    """'LABEL=PATH,LABEL=PATH' -> [(label, path), ...]; an empty text gives an empty list."""
    pairs = []
    for item in [p for p in text.split(",") if p.strip()]:
        require("=" in item and all(part.strip() for part in item.split("=", 1)), field_name, f"expected LABEL=PATH, got {item!r}")
        label, path = (part.strip() for part in item.split("=", 1))
        pairs.append((label, path))
    return pairs


MIN_LR_FACTOR_FLOOR = 1e-8
MAX_LR_FACTOR_CEILING = 100.0
MAX_WINDOW = 16_384  # steps of history; the observation's memory grows with it
MAX_LAYER_GROUPS = 1024


LATER_CONTROL_FIELDS = ("max_lr_rise", "start_decision_interval", "start_steps", "rise_span_fraction", "rise_span_while_falling",
                        "rise_span_distance", "rise_span_from_step", "cooldown_fraction", "cooldown_max_steps",
                        "after_loss_rise", "distance_skips_zero_start", "grad_norms_from_first_nonzero", "layer_groups",
                        "grad_norms_skip_zero_start", "loss_over_lowest", "over_lowest_below_layers")  # each off at 0
# Added after policies' hashes were recorded (``policy.policy_sha256``): left out of ``ControlConfig.identity`` while off,
# so every earlier policy keeps its hash and a run saved under it still resumes.
UNHASHED_WHEN_OFF = ("rise_span_fraction", "rise_span_while_falling", "rise_span_distance", "rise_span_from_step", "cooldown_fraction",
                     "cooldown_max_steps", "after_loss_rise", "distance_skips_zero_start", "grad_norms_from_first_nonzero", "layer_groups",
                     "grad_norms_skip_zero_start", "loss_over_lowest", "over_lowest_below_layers")
# Fields that only qualify another one: left out of the hash and of result settings while that one is off.
QUALIFIES = {"over_lowest_factor": "loss_over_lowest"}


def _without_idle_qualifiers(fields: dict) -> dict:
    return {k: v for k, v in fields.items() if not (k in QUALIFIES and not fields[QUALIFIES[k]])}


@dataclass(frozen=True)
class ControlConfig:
    """How the policy sees a run and acts on it (shared by the env, BC, PPO and the scheduler)."""

    window: int = arg(512, "steps of history the policy sees (left-padded and masked early in a run)")
    decision_interval: int = arg(8, "steps between decisions (K); the LR ramps log-linearly to each new decision")
    min_lr_factor: float = arg(1e-3, "lowest LR the policy can set, as a fraction of the base (peak) LR")
    max_lr_factor: float = arg(4.0, "highest LR the policy can set, as a fraction of the base LR (>1 lets PPO raise a too-low base LR)")
    inputs: str = arg("all", "observed features: all, subramanian (remaining time, val loss, grad norms only), all+momentum "
                      "(all, plus each layer's gradient-momentum cosine), all+distance (all, plus each layer's distance from its "
                      "initial weights), all+distance+length (and the run's length) or all+distance+response (and how the loss and "
                      "gradient norm followed the LR's own changes)", choices=INPUT_CHOICES)
    max_lr_rise: float = arg(0.0, "the most one decision may raise the LR, as a factor of the LR it starts from (e.g. 4: at most 4x "
                             "per K steps); 0: no limit. Cuts are never limited")
    rise_span_fraction: float = arg(0.0, "with a rise limit, a run shorter than K / this fraction gets its r-fold rise per this "
                                    "fraction of its steps instead of per K (e.g. 0.125: a 100-step run may rise 4x per 12.5 "
                                    "steps); 0: per K steps whatever the run's length")
    rise_span_while_falling: bool = arg(False, "the short span of rise_span_fraction applies to a decision only if the run's "
                                        "training loss fell over the block before it (its mean below the previous block's); "
                                        "otherwise the limit is per K steps")
    rise_span_distance: float = arg(0.0, "the short span of rise_span_fraction applies to a decision only while the layers' "
                                    "distance from their initial weights, relative to those weights (geometric mean over layers, as "
                                    "last measured), is below this (e.g. 0.05); needs inputs that read it (all+distance). 0: off")
    rise_span_from_step: int = arg(0, "the short span of rise_span_fraction applies only to decisions at or after this step (e.g. "
                                   "17: not the first block's, which has read one step); 0: any")
    distance_skips_zero_start: bool = arg(False, "the distance features (all+distance) summarize only the layers whose weights "
                                          "started away from zero: a layer that started at zero (LoRA's B matrices) has no "
                                          "distance relative to its start, and without this it reads as a blow-up")
    grad_norms_from_first_nonzero: bool = arg(False, "a layer whose first gradient is zero (LoRA's A while B is zero) reads its "
                                              "gradient norms relative to its first non-zero one; without this, relative to 1.0 "
                                              "(absolute norms, on the model's own scale)")
    grad_norms_skip_zero_start: bool = arg(False, "a layer whose first gradient is zero is left out of the layer-gradient "
                                           "inputs (its norms have no reference at the start); the total norm keeps it")
    layer_groups: int = arg(0, "the min and max over layers of each per-layer feature are over this many groups of consecutive "
                            "layers (each their mean) on a model with more layers (e.g. 4: the most the policy trained on); 0: "
                            "over the layers themselves")
    after_loss_rise: float = arg(0.0, "after a block whose mean training loss rose above the block's before it, a decision may set "
                                 "at most this times the LR it starts from (1: no rise; 0.5: at least a halving); 0: off")
    loss_over_lowest: float = arg(0.0, "while the last block's mean training loss is above this times the lowest block mean of the "
                                  "run so far (e.g. 1.5), a decision may set at most over_lowest_factor times the LR it starts from; 0: off")
    over_lowest_factor: float = arg(1.0, "with loss_over_lowest: 1 holds the LR, 0.5 at least halves it")
    over_lowest_below_layers: int = arg(0, "with loss_over_lowest: the brake only on models of fewer than this many layers (e.g. "
                                        "6, where the default's depth gate turns to its cautious side); 0: on every model")
    cooldown_fraction: float = arg(0.0, "the LR of a run's last this share of its steps is the policy's times a linear decay to zero "
                                   "(a cooldown, as warm-up-stable-decay schedules end; e.g. 0.2); 0: none")
    cooldown_max_steps: int = arg(0, "the cooldown only on runs shorter than this many steps (e.g. 300); 0: on every run")
    start_decision_interval: int = arg(0, "decide every this many steps over the run's first start_steps steps, instead of every K "
                                         "(0: every K throughout)")
    start_steps: int = arg(0, "how many of the run's first steps start_decision_interval applies to")

    def __post_init__(self) -> None:
        check_choice(self.inputs, INPUT_CHOICES, "inputs")
        require(self.window >= 1, "window", f"must be >= 1, got {self.window}")
        require(self.decision_interval >= 1, "decision_interval", f"must be >= 1, got {self.decision_interval}")
        require(0 < self.min_lr_factor < self.max_lr_factor, "min_lr_factor", f"need 0 < min_lr_factor < max_lr_factor, got {self.min_lr_factor}, {self.max_lr_factor}")
        # The bounds are the promise that the LR stays within a sane range of the base LR, whatever
        # a policy file says: a factor beyond these is no schedule but a bug or a hostile file.
        require(self.min_lr_factor >= MIN_LR_FACTOR_FLOOR, "min_lr_factor", f"must be >= {MIN_LR_FACTOR_FLOOR:g}, got {self.min_lr_factor}")
        require(self.max_lr_factor <= MAX_LR_FACTOR_CEILING, "max_lr_factor", f"must be <= {MAX_LR_FACTOR_CEILING:g}, got {self.max_lr_factor}")
        require(self.window <= MAX_WINDOW, "window", f"must be <= {MAX_WINDOW}, got {self.window}")
        require(self.max_lr_rise == 0 or (math.isfinite(self.max_lr_rise) and self.max_lr_rise > 1), "max_lr_rise",
                f"must be 0 (no limit) or a finite factor > 1, got {self.max_lr_rise}")
        require(self.rise_span_fraction == 0 or (self.max_lr_rise > 1 and 0 < self.rise_span_fraction <= 1), "rise_span_fraction",
                f"must be 0 (off) or in (0, 1], with a rise limit (max_lr_rise > 1), got {self.rise_span_fraction} "
                f"(max_lr_rise {self.max_lr_rise})")
        require(not self.rise_span_while_falling or self.rise_span_fraction > 0, "rise_span_while_falling",
                "needs a rise_span_fraction (> 0) to loosen")
        require(self.rise_span_distance == 0 or (self.rise_span_fraction > 0 and self.rise_span_distance > 0
                                                    and math.isfinite(self.rise_span_distance) and reads_distance(self.inputs)),
                "rise_span_distance", f"must be 0 (off) or a finite distance > 0, with a rise_span_fraction and inputs that read the "
                f"distance (all+distance...), got {self.rise_span_distance} (rise_span_fraction {self.rise_span_fraction}, inputs {self.inputs})")
        require(self.rise_span_from_step == 0 or (self.rise_span_fraction > 0 and self.rise_span_from_step > 0), "rise_span_from_step",
                f"must be 0 (any step) or a step > 0, with a rise_span_fraction, got {self.rise_span_from_step}")
        require(not self.distance_skips_zero_start or reads_distance(self.inputs), "distance_skips_zero_start",
                f"needs inputs that read the distance (all+distance...), got {self.inputs}")
        require(not (self.grad_norms_skip_zero_start and self.grad_norms_from_first_nonzero), "grad_norms_skip_zero_start",
                "a layer whose first gradient is zero is either left out or read from its first non-zero norm: not both "
                "(turn grad_norms_from_first_nonzero off: bundle --grad-norms-from-first-nonzero 0)")
        require(0 <= self.layer_groups <= MAX_LAYER_GROUPS, "layer_groups", f"must be in 0..{MAX_LAYER_GROUPS} (0: off), got {self.layer_groups}")
        require(self.after_loss_rise == 0 or 0 < self.after_loss_rise <= 1, "after_loss_rise",
                f"must be 0 (off) or in (0, 1], got {self.after_loss_rise}")
        require(self.loss_over_lowest == 0 or (math.isfinite(self.loss_over_lowest) and self.loss_over_lowest > 1), "loss_over_lowest",
                f"must be 0 (off) or a finite ratio > 1, got {self.loss_over_lowest}")
        require(0 < self.over_lowest_factor <= 1, "over_lowest_factor", f"must be in (0, 1], got {self.over_lowest_factor}")
        require(self.over_lowest_below_layers == 0 or (self.loss_over_lowest > 0 and self.over_lowest_below_layers >= 2),
                "over_lowest_below_layers", f"must be 0 (every model) or a layer count >= 2, and limits the loss-over-lowest brake, "
                f"which must be on (bundle --loss-over-lowest 1.5): got {self.over_lowest_below_layers} (loss_over_lowest {self.loss_over_lowest})")
        require(0 <= self.cooldown_fraction < 1, "cooldown_fraction", f"must be in [0, 1) (0: none), got {self.cooldown_fraction}")
        require(self.cooldown_max_steps == 0 or (self.cooldown_fraction > 0 and self.cooldown_max_steps >= 2), "cooldown_max_steps",
                f"must be 0 (every run) or >= 2, with a cooldown_fraction, got {self.cooldown_max_steps}")
        require(min(self.start_decision_interval, self.start_steps) >= 0 and (self.start_decision_interval == 0) == (self.start_steps == 0),
                "start_steps", f"give --start-decision-interval and --start-steps together, each >= 0 (got {self.start_decision_interval}, "
                f"{self.start_steps})")

    def identity(self) -> dict:
        """The fields as a dict, for a policy's hash: those of ``UNHASHED_WHEN_OFF`` only when set."""
        fields = _without_idle_qualifiers(dataclasses.asdict(self))
        return {k: v for k, v in fields.items() if not (k in UNHASHED_WHEN_OFF and not v)}

    def setting(self) -> dict:
        """The fields as a dict, for result caches' settings: those added after results were cached (``LATER_CONTROL_FIELDS``)
        appear only when set, so a result cached before them stays valid and one made with them is never mistaken for it."""
        fields = _without_idle_qualifiers(dataclasses.asdict(self))
        return {k: v for k, v in fields.items() if not (k in LATER_CONTROL_FIELDS and v == 0)}

    @property
    def log_bounds(self) -> tuple[float, float]:
        """The action's bounds: log of the LR as a fraction of the base LR."""
        return math.log(self.min_lr_factor), math.log(self.max_lr_factor)


REWARD_KINDS = ("proposal", "subramanian", "final")


@dataclass(frozen=True)
class RewardConfig:
    """The proposal's reward: minus the window mean of l1*max(0, dL_train) + l2*L_train + l3*L_val (normalized losses)."""

    stability_weight: float = arg(1.0, "l1: weight of training-loss increases (the stability term)")
    train_loss_weight: float = arg(1.0, "l2: weight of the training loss")
    val_loss_weight: float = arg(1.0, "l3: weight of the validation loss")
    divergence_penalty: float = arg(10.0, "reward given (negated) when a run diverges, ending its episode")
    discount: float = arg(0.97, "discount per decision for returns (critic targets, GAE)")
    kind: str = arg("proposal", "reward: proposal (the formula above), subramanian (g*(best_val - val) + l*(steps left), Subramanian et al. 2023) "
                    "or final (-log of the final normalized val loss, at the last decision only)", choices=REWARD_KINDS)
    subramanian_gain: float = arg(1.0, "subramanian reward: g, weight of the improvement over the best validation loss so far")
    subramanian_time_weight: float = arg(0.0, "subramanian reward: l, weight of the remaining fraction of the run")

    def __post_init__(self) -> None:
        check_choice(self.kind, REWARD_KINDS, "kind")
        for name in ("stability_weight", "train_loss_weight", "val_loss_weight", "divergence_penalty"):
            value = getattr(self, name)
            require(math.isfinite(value) and value >= 0, name, f"must be a finite number >= 0, got {value}")
        require(0.0 <= self.discount <= 1.0, "discount", f"must be in [0, 1], got {self.discount}")


@dataclass(frozen=True)
class PolicyConfig:
    """Actor and critic: each a small Transformer encoder over the observation window."""

    patch: int = arg(16, "consecutive steps folded into one token (the window must be a multiple)")
    d_model: int = arg(64, "Transformer width")
    layers: int = arg(4, "Transformer layers")
    heads: int = arg(2, "attention heads")
    min_std: float = arg(0.05, "floor on the actor's spread (log-LR units), so PPO can still explore after BC")
    init_std: float = arg(0.3, "actor's spread at initialization (log-LR units)")

    def __post_init__(self) -> None:
        require(self.patch >= 1, "patch", f"must be >= 1, got {self.patch}")
        require(self.d_model >= 1 and self.heads >= 1 and self.d_model % self.heads == 0, "d_model", f"must be a positive multiple of heads ({self.heads}), got {self.d_model}")
        require(self.layers >= 1, "layers", f"must be >= 1, got {self.layers}")
        require(0 < self.min_std <= self.init_std, "min_std", f"need 0 < min_std <= init_std, got {self.min_std}, {self.init_std}")
