"""CodeRL's reinforcement-learning half, in pieces a researcher can replace:

    config.py   RLConfig
    rollout.py  sample K + greedy, execute in the one Executor, score critic / reference
                while the sandbox works, reward -> groups of judged samples
    rewards.py  rewards (problem, verdict) -> float, an open registry (`register_reward`)
    returns.py  return estimators, an open registry (`register_estimator`; pure numpy)
    batch.py    judged groups -> the one weighted Batch (pure, host-side)
    stats.py    what a step reports about its rollouts
    offline.py  judged groups from samples + results files
    source.py   online / offline batch sources of the one loop (`training/loop.py`)
    stage.py    train_rl

rl imports training (the step, the loop, the batch); training never imports rl. Submodules
are imported explicitly (nothing here), so importing the package loads neither JAX nor numpy.
"""
