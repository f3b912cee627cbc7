"""Training the policy: rollouts, behavioral cloning, PPO."""
