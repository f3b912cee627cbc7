"""Which trainee seeds each stage uses, in one table, so that no stage trains on another's evaluation runs.

Every random thing of a trainee run (initialization, batch order, validation batches) derives from
its seed, so disjoint seed ranges are disjoint runs:

==========================  ===============  ==============================================
range                       used by          why
==========================  ===============  ==============================================
0 - 9,999                   demonstrations   ``collect``: seed x 1,000 + a block per expert and run length
                                             (so at ``--seed`` 0-9; the BC policies' data); ``general-train``'s
                                             variant k of a family sweeps on k x 1,000 + 900
10,000 - 49,999             DAgger rounds    the policy's own states, labelled by the oracle
50,000 - 89,999             PPO              PPO's trainee runs
90,000 - 99,999             validation       choosing between policies (no stage trains here): PPO's
                                             snapshots from 90,000, ``validate``'s set from 95,000
100,000 on                  evaluation       every reported table (held out from everything)
==========================  ===============  ==============================================

LoRA fine-tuning has its own, separate numbering: the comparison runs use seeds 0, 1, 2, ...
and ``adapt-llm``'s teacher runs start at ``LLM_TEACHER_SEED_START``.
"""

DAGGER_SEED_START = 10_000
PPO_SEED_START = 50_000
PPO_SEED_SPAN = 40_000  # PPO's runs stay in [PPO_SEED_START, PPO_SEED_START + PPO_SEED_SPAN)
VALIDATION_SEED_START = 90_000
EVAL_SEED_START = 100_000
LLM_TEACHER_SEED_START = 100
