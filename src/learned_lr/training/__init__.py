"""Training the policy: expert schedules, rollouts, behavioral cloning, DAgger, PPO, rollout backends, the gym env.

Imports the library (policy, observation, control, reward, ``loop.DecisionLoop``) and the trainees
(``tasks``); never the experiments above it.
"""
