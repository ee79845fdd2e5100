"""The training core: batches, optimizer, train state, the one jitted train step, the loop.

    batch.py      the typed batch pytree and its host-side builders (weights are data)
    optimizer.py  AdamW + clipping + the paper's learning-rate schedules
    state.py      TrainState, sharded creation, checkpoint items
    step.py       the one train step (microbatched, sharded, donated) for actor and critic
    loop.py       the host loop: resume, checkpoints, logs, progress, periodic eval

Why a package of its own (not `rl/`): the same step trains the warm start, the critic, the
repair model and the RL actor; `rl/` holds what is RL-specific (losses, returns, learner).
"""
