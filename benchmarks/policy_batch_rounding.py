"""Does a policy decide the same for a run whether it is batched with 2 other runs or with 4?

The benchmark decides for all runs of a cell in one batch (``training.rollout.PolicyController``), so a
3-seed and a 5-seed run of the same cell can differ if the actor's output for one row depends on the
batch's size. This feeds the same 5 random observations (window, mask, context, inside the ranges the
features take) to an actor as one batch of 5 and as a batch of their first 3, and prints the largest
difference in the log-LR mean of those 3 rows.

    .venv/bin/python benchmarks/policy_batch_rounding.py --policy default
"""

import argparse

import torch

from learned_lr.bundled import resolve_policy
from learned_lr.features import NUM_CONTEXT
from learned_lr.policy import load_policy


def largest_difference(policy: str, seed: int = 0) -> float:
    loaded = load_policy(resolve_policy(policy))
    actor, control = loaded.actor.eval(), loaded.control_config
    encoder = actor.encoder
    generator = torch.Generator().manual_seed(seed)
    window = torch.randn(5, control.window, encoder.num_features, generator=generator)
    mask = torch.ones(5, control.window)
    context = torch.rand(5, NUM_CONTEXT, generator=generator)
    with torch.no_grad():
        five, _ = actor(window, mask, context)
        three, _ = actor(window[:3], mask[:3], context[:3])
    return float((five[:3] - three).abs().max())


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--policy", action="append", help="a bundled name or a .safetensors path (repeatable)")
    args = parser.parse_args()
    for policy in args.policy or ["default"]:
        print(f"{policy}: largest |mean(batch of 5) - mean(batch of 3)| over the shared rows = {largest_difference(policy):.3g} (log-LR units)")
