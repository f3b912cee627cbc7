"""Training the policy: expert schedules, rollouts, behavioral cloning, DAgger, PPO, rollout backends, the gym env.

Imports the library (policy, observation, control, reward, ``loop.DecisionLoop``) and the trainees
(``tasks``); never the experiments above it.
"""

from learned_lr.settings import require_train_extra

require_train_extra("learned_lr.training (training the policy)")
