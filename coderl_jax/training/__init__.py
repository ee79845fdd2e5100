"""The training core: batches, losses, optimizer, train state, the one train step, the loop.

    batch.py       the typed batch pytree and its host-side builders (weights are data)
    losses.py      the one weighted token cross-entropy, the KL term, the critic's loss
    optimizer.py   AdamW + clipping + the paper's learning-rate schedules
    state.py       TrainState, sharded creation, checkpoint items
    step.py        the one train step (microbatched, sharded, donated) for actor and critic
    loop.py        the one host loop: resume, checkpoints, logs, progress, eval, stop
    sources.py     what the loop pulls batches from; data order and dataset streams
    metrics_log.py metrics.jsonl + TensorBoard
    forward.py     the one cache of compiled forward passes of frozen models
    evaluation.py  held-out loss, greedy pass@1, critic accuracy
    model_io.py    the model a stage starts from (load_init) and the model dir it writes
    labelled.py    the one samples + results reader
    pretrain.py, finetune.py, critic.py, repair.py: the supervised stages

Why a package of its own (not `rl/`): the same step and loop train the warm start, the
critic, the repair model and the RL actor; `rl/` holds what is RL-specific and imports
this package, never the other way. No gin here: the mains (`train/`) bind the dataclasses.
"""
