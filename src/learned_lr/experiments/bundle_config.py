"""`learned-lr bundle`'s settings: which policy to ship, under which name, with which control options changed."""

from __future__ import annotations

import math
from dataclasses import dataclass

from learned_lr.bundled import BUNDLED_NAMES
from learned_lr.settings import arg, check_choice, parse_list, require

# The flags that set a ControlConfig field of the same name (-1: as the policy has it), with its type.
CONTROL_FLAGS = {"max_lr_rise": float, "rise_span_fraction": float, "rise_span_while_falling": bool, "rise_span_distance": float,
                 "rise_span_from_step": int, "after_loss_rise": float, "loss_over_lowest": float, "over_lowest_factor": float,
                 "over_lowest_below_layers": int,
                 "distance_skips_zero_start": bool,
                 "grad_norms_from_first_nonzero": bool, "grad_norms_skip_zero_start": bool, "layer_groups": int}


@dataclass(frozen=True)
class BundleConfig:
    """`learned-lr bundle`: make a trained policy the one shipped in the package (LearnedLR's default)."""

    policy: str = arg("runs/demo/ppo-all/policy.safetensors", "policy checkpoint to ship")
    produced_by: str = arg("learned-lr demo", "the command that produced the policy (recorded in the bundle)")
    scored: str = arg("", "what it scored and where (recorded in the bundle)")
    name: str = arg("default", f"which bundled policy to write, one of {', '.join(BUNDLED_NAMES)} (LearnedLR(policy=NAME); "
                    "default: LearnedLR's default)", choices=BUNDLED_NAMES)
    decision_interval: int = arg(0, "run the actor deciding every this many steps (0: the K it was trained at); a larger K costs "
                                 "the drop-in less, and how well the actor schedules at it is for the benchmark to say")
    max_lr_rise: float = arg(-1.0, "run the actor under this rise limit: the most one decision may raise the LR, as a factor (0: none; -1: as trained)")
    rise_span_fraction: float = arg(-1.0, "with a rise limit, a run shorter than K / this fraction may rise r-fold per this share of its "
                                    "steps instead of per K (0: per K whatever the length; -1: as the policy has it)")
    rise_span_while_falling: int = arg(-1, "1: the short span only after a block whose training loss fell (else per K); 0: always; "
                                       "-1: as the policy has it")
    rise_span_distance: float = arg(-1.0, "the short span only while the weights' distance from their initial ones, relative to "
                                    "them, is below this (e.g. 0.05; 0: always; -1: as the policy has it)")
    rise_span_from_step: int = arg(-1, "the short span only for decisions at or after this step (0: any; -1: as the policy has it)")
    distance_skips_zero_start: int = arg(-1, "1: the distance features over the layers that started away from zero only (a layer "
                                         "that started at zero, LoRA's B, has no relative distance); 0: every layer; -1: as the policy has it")
    grad_norms_from_first_nonzero: int = arg(-1, "1: a layer whose first gradient is zero (LoRA's A) reads its norms relative to its "
                                             "first non-zero one, not to 1.0; 0: as before; -1: as the policy has it")
    grad_norms_skip_zero_start: int = arg(-1, "1: a layer whose first gradient is zero (LoRA's A) is left out of the layer-gradient "
                                          "inputs (give --grad-norms-from-first-nonzero 0 with it); 0: kept; -1: as the policy has it")
    layer_groups: int = arg(-1, "the min and max over layers over this many groups of consecutive layers of a deeper model (0: over "
                            "the layers; -1: as the policy has it)")
    after_loss_rise: float = arg(-1.0, "after a block whose training loss rose, a decision sets at most this times the LR it starts "
                                 "from (1: no rise; 0.5: at least a halving; 0: off; -1: as the policy has it)")
    loss_over_lowest: float = arg(-1.0, "while the last block's training loss is above this times the run's lowest block mean (e.g. "
                                  "1.5), a decision sets at most --over-lowest-factor times the LR it starts from (0: off; -1: as the policy has it)")
    over_lowest_factor: float = arg(-1.0, "with --loss-over-lowest: 1 holds the LR, 0.5 at least halves it (-1: as the policy has it)")
    over_lowest_below_layers: int = arg(-1, "with --loss-over-lowest: the brake only on models of fewer than this many layers "
                                        "(e.g. 6; 0: every model; -1: as the policy has it)")
    cooldown_fraction: float = arg(-1.0, "decay the LR of a run's last this share of its steps linearly to zero (e.g. 0.2; 0: none; "
                                   "-1: as the policy has it)")
    cooldown_max_steps: int = arg(-1, "the cooldown only on runs shorter than this many steps (0: every run; -1: as the policy has it)")
    start_decision_interval: int = arg(-1, "decide every this many steps over a run's first --start-steps (0: none; -1: as trained)")
    start_steps: int = arg(-1, "how many of the run's first steps --start-decision-interval applies to (-1: as trained)")
    destination: str = arg("", "write the bundle to this .safetensors file instead of the package (to score it with `learned-lr benchmark` first)")
    ensemble_with: str = arg("", "comma-separated further policy checkpoints (single actors) that decide together with --policy: the "
                             "bundle's actor takes the mean of their log-LRs (each must read the same inputs); a --policy that is an "
                             "ensemble or length-gated already gets them as further members of its (long-run) side")
    short_runs: str = arg("", "a policy (checkpoint or bundled name; one actor or an ensemble) whose actor(s) alone schedule runs shorter than --short-run-steps; "
                          "longer runs get the actor(s) above, unchanged (empty: every run gets them)")
    short_run_steps: int = arg(0, "runs of fewer than this many steps go to --short-runs")
    structural: str = arg("", "a policy (checkpoint or bundled name) whose long-run actor(s) schedule the long runs of models with "
                          "--structural-min-layers layers or more, or with a layer whose first gradient is zero (a layer behind a "
                          "zero-initialised one); other models get the actor(s) above (empty: every model gets them)")
    structural_min_layers: int = arg(0, "the layer count (modules owning parameters) from which a model goes to --structural")
    structural_zero_start: int = arg(1, "1: a model with a layer whose first gradient is zero goes to --structural too; 0: by the "
                                     "layer count alone")

    def __post_init__(self) -> None:
        require(bool(self.policy), "policy", "give a policy checkpoint path")
        require((self.short_run_steps >= 2) == bool(self.short_runs) and self.short_run_steps >= 0, "short_run_steps",
                f"give --short-runs and --short-run-steps (>= 2) together, got {self.short_runs!r} and {self.short_run_steps}")
        require((self.structural_min_layers >= 2) == bool(self.structural) and self.structural_min_layers >= 0, "structural_min_layers",
                f"give --structural and --structural-min-layers (>= 2) together, got {self.structural!r} and {self.structural_min_layers}")
        require(self.structural_zero_start in (0, 1), "structural_zero_start", f"must be 0 or 1, got {self.structural_zero_start}")
        require(min(self.start_decision_interval, self.start_steps) >= -1 and (self.start_decision_interval == -1) == (self.start_steps == -1),
                "start_steps", "give --start-decision-interval and --start-steps together, each >= 0 (-1 for both: as trained)")
        require(self.max_lr_rise in (-1.0, 0.0) or (math.isfinite(self.max_lr_rise) and self.max_lr_rise > 1), "max_lr_rise", f"must be -1 (as trained), 0 (no limit) or > 1, got {self.max_lr_rise}")
        require(self.rise_span_fraction == -1 or 0 <= self.rise_span_fraction <= 1, "rise_span_fraction",
                f"must be -1 (as the policy has it), 0 (off) or in (0, 1], got {self.rise_span_fraction}")
        require(self.rise_span_distance == -1 or (math.isfinite(self.rise_span_distance) and self.rise_span_distance >= 0), "rise_span_distance",
                f"must be -1 (as the policy has it), 0 (off) or a distance > 0, got {self.rise_span_distance}")
        require(self.rise_span_from_step >= -1, "rise_span_from_step", f"must be -1 (as the policy has it) or a step >= 0, got {self.rise_span_from_step}")
        for name in (name for name, cast in CONTROL_FLAGS.items() if cast is bool):  # -1: as the policy has it; 0 / 1: off / on
            require(getattr(self, name) in (-1, 0, 1), name, f"must be -1, 0 or 1, got {getattr(self, name)}")
        require(self.layer_groups >= -1, "layer_groups", f"must be -1 (as the policy has it), 0 (off) or a count >= 1, got {self.layer_groups}")
        require(self.after_loss_rise == -1 or 0 <= self.after_loss_rise <= 1, "after_loss_rise",
                f"must be -1 (as the policy has it), 0 (off) or in (0, 1], got {self.after_loss_rise}")
        require(self.loss_over_lowest == -1 or self.loss_over_lowest == 0 or (math.isfinite(self.loss_over_lowest) and self.loss_over_lowest > 1),
                "loss_over_lowest", f"must be -1 (as the policy has it), 0 (off) or a finite ratio > 1, got {self.loss_over_lowest}")
        require(self.over_lowest_factor == -1 or 0 < self.over_lowest_factor <= 1, "over_lowest_factor",
                f"must be -1 (as the policy has it) or in (0, 1], got {self.over_lowest_factor}")
        require(self.over_lowest_below_layers in (-1, 0) or self.over_lowest_below_layers >= 2, "over_lowest_below_layers",
                f"must be -1 (as the policy has it), 0 (every model) or a layer count >= 2, got {self.over_lowest_below_layers}")
        require(self.cooldown_fraction == -1 or 0 <= self.cooldown_fraction < 1, "cooldown_fraction",
                f"must be -1 (as the policy has it), 0 (none) or in (0, 1), got {self.cooldown_fraction}")
        require((self.cooldown_fraction == -1) == (self.cooldown_max_steps == -1) and self.cooldown_max_steps >= -1, "cooldown_max_steps",
                f"give --cooldown-fraction and --cooldown-max-steps together (-1 for both: as the policy has it), got "
                f"{self.cooldown_fraction} and {self.cooldown_max_steps}")
        check_choice(self.name, BUNDLED_NAMES, "name")
        require(self.decision_interval >= 0, "decision_interval", f"must be >= 0 (0: as trained), got {self.decision_interval}")
        require(not self.destination or self.destination.endswith(".safetensors"), "destination", f"must end in .safetensors, got {self.destination!r}")
        require(len(self.ensemble_members) <= 15, "ensemble_with", f"at most 15 further policies, got {len(self.ensemble_members)}")

    @property
    def control_changes(self) -> dict:
        """The ``ControlConfig`` fields this bundle sets, by name (-1, or a K of 0: as the policy has it)."""
        as_set = lambda value, cast: None if value < 0 else cast(value)  # noqa: E731
        changes = {name: as_set(getattr(self, name), cast) for name, cast in CONTROL_FLAGS.items()}
        changes["decision_interval"] = self.decision_interval or None
        if self.start_steps >= 0:
            changes.update(start_decision_interval=self.start_decision_interval, start_steps=self.start_steps)
        if self.cooldown_fraction >= 0:
            changes.update(cooldown_fraction=self.cooldown_fraction, cooldown_max_steps=self.cooldown_max_steps)
        return changes

    @property
    def ensemble_members(self) -> list[str]:
        """The further policies of --ensemble-with, in order (empty: a single actor)."""
        return parse_list(self.ensemble_with, "ensemble_with", str) if self.ensemble_with.strip() else []
