"""The warm start (and the repair model's training): L_ce on (prompt, program) pairs.

    model_dir = finetune(workdir, dataset="synthetic", data="train.jsonl",
                         init_model="pretrain/model")

Examples are (prompt of `prompts.format_prompt`, reference solution) pairs
(`objectives.supervised_examples`: a solution longer than max_target_length is left out and
counted, never cut). A seeded share of the problems is held out; every `eval_period` steps
and at the end the held-out loss and the greedy pass@1 through the sandbox are logged.
"""

from __future__ import annotations

import pathlib
from collections.abc import Sequence
from typing import Any, Callable

from coderl_jax.training import evaluation, loop, sources
from coderl_jax.training.model_io import InitModel, Loader, load_init, save_final
from coderl_jax.training.optimizer import OptimizerConfig
from coderl_jax.training.stopping import EarlyStopping
from coderl_jax.training.step import ActorModel


def train_supervised(workdir: str | pathlib.Path, init: InitModel,
                     examples: Sequence[dict], *, max_source_length: int,
                     max_target_length: int, trainer: loop.TrainerConfig,
                     optimizer: OptimizerConfig, heldout_examples: Sequence[dict] = (),
                     heldout_problems: Sequence[Any] = (), eval_problems: int = 0,
                     desc: str = "finetune", log: Callable[[str], None] = print,
                     stopping: EarlyStopping | None = None) -> pathlib.Path:
    """Train the actor with L_ce on `examples` ({"inputs", "targets"} token ids) and write
    `workdir/model`. Held-out loss ("heldout_nll") on `heldout_examples`, greedy pass@1
    ("heldout_greedy_pass@1") on up to `eval_problems` of `heldout_problems` (sandbox,
    hidden tests); `stopping` watches one of them (`training/stopping.py`)."""
    if not examples:
        raise ValueError(f"{desc}: no training examples")
    model = ActorModel(init.config)
    heldout_batches = evaluation.fixed_batches(list(heldout_examples), trainer.batch_size,
                                           max_source_length, max_target_length)
    executor = None
    if eval_problems and heldout_problems:
        from coderl_jax.sandbox import Executor

        executor = Executor(2)

    def evaluate(state) -> dict:
        results = {}
        if heldout_batches:
            results["heldout_nll"] = evaluation.heldout_nll(init.config, state.params,
                                                            heldout_batches)
        if executor is not None:
            results["heldout_greedy_pass@1"] = evaluation.greedy_pass_rate(
                init.config, state.params, init.tokenizer, list(heldout_problems)[:eval_problems],
                executor, max_source_length=max_source_length,
                max_new_tokens=max_target_length)
        return results

    try:
        state = loop.run_training(
            workdir=workdir, model=model, trainer=trainer, optimizer=optimizer,
            init_params=(lambda: init.params) if init.params is not None else None,
            source=sources.supervised_stream(examples, trainer.batch_size,
                                             max_source_length, max_target_length,
                                             trainer.seed),
            eval_fn=evaluate, log=log, desc=desc, stopping=stopping)
    finally:
        if executor is not None:
            executor.close()
    out = save_final(workdir, init, state, metadata={"stage": desc, "init": init.source})
    log(f"[{desc}] wrote {out}")
    return out


def finetune(workdir: str, *, dataset: str, trainer: loop.TrainerConfig,
             optimizer: OptimizerConfig, data: str | None = None,
             init_model: str | None = None, tokenizer: str | None = None,
             max_source_length: int = 600, max_target_length: int = 512,
             holdout_fraction: float = 0.05, eval_problems: int = 32,
             max_problems: int | None = None, loader: Loader = load_init,
             log: Callable[[str], None] = print,
             stopping: EarlyStopping | None = None,
             eval_data: str | None = None) -> pathlib.Path:
    """Warm-start the actor on a problem set's reference solutions; returns the model dir.

    Args:
      dataset, data: the problems (`loaders.load_problems`: synthetic, apps, mbpp, ...).
      init_model: our model dir, a HF dir or a hub id; None = scratch (needs `tokenizer`).
      max_source_length / max_target_length: the fixed encoder / decoder lengths.
      holdout_fraction: share of the problems held out for the held-out loss and greedy
        pass@1 (on at most `eval_problems` of them).
      max_problems: use only the first N problems (smoke runs).
      trainer, optimizer: how long (train_steps: the cap) and how to train (a decaying
        OptimizerConfig.schedule for the warm start).
      stopping: the stopping rule (e.g. EarlyStopping("heldout_greedy_pass@1",
        patience=3) with TrainerConfig.eval_period): None / metric "" = train_steps.
      eval_data: held-out problems of the same dataset (a validation split) instead of a
        holdout_fraction of `data` (then all of `data` trains).
      loader: (init_model, tokenizer) -> InitModel (`model_io.load_init`; the mains bind
        its scratch config and dtype).
    """
    from coderl_jax.data import loaders, objectives

    problems = loaders.load_problems(dataset, data)[:max_problems]
    if not any(p.solutions for p in problems):
        raise ValueError(f"finetune: no problem of {dataset} {data or ''} has a reference "
                         "solution; the warm start needs (problem, solution) pairs")
    init = loader(init_model, tokenizer)
    if eval_data is not None:
        train_problems, held = problems, loaders.load_problems(dataset, eval_data)
    else:
        train_problems, held = sources.split_holdout(problems, holdout_fraction, trainer.seed)

    def examples_of(ps):
        stats = objectives.SupervisedStats()
        out = list(objectives.supervised_examples(ps, init.tokenizer,
                                                  max_source_length=max_source_length,
                                                  max_target_length=max_target_length,
                                                  stats=stats))
        return out, stats

    examples, stats = examples_of(train_problems)
    heldout, _ = examples_of(held)
    log(f"[finetune] {len(examples)} (prompt, solution) pairs from {len(train_problems)} "
        f"problems ({len(stats.unsolved)} without solutions, {len(stats.long_targets)} "
        f"solutions longer than {max_target_length} tokens left out); {len(held)} held out")
    return train_supervised(workdir, init, examples, max_source_length=max_source_length,
                            max_target_length=max_target_length, heldout_examples=heldout,
                            heldout_problems=held, eval_problems=eval_problems,
                            trainer=trainer, optimizer=optimizer, desc="finetune",
                            log=log, stopping=stopping)
