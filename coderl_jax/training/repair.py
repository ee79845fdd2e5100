"""The repair model: a seq2seq trained with L_ce to map a failed sample to a correct program.

Input: `data.repair.repair_prompt(problem, failed program, outcome, error subtype)`;
target: a reference solution of the problem (the first that fits max_target_length). The
failed samples come from a samples file and its results file (`coderl generate` +
`coderl execute` on a train split); InternalError samples are dropped and counted.
"""

from __future__ import annotations

import pathlib
from typing import Callable

from coderl_jax import outcomes
from coderl_jax.training import loop
from coderl_jax.training.finetune import train_supervised
from coderl_jax.training.labelled import encode_pair, load_labelled_data
from coderl_jax.training.model_io import Loader, load_init
from coderl_jax.training.optimizer import OptimizerConfig


def repair_examples(labelled, problems_by_id, tokenizer, max_source_length: int,
                    max_target_length: int, max_per_problem: int | None = None) -> list[dict]:
    """{"task_id", "inputs", "targets"} for each failed sample with a usable reference."""
    from coderl_jax.data.repair import repair_prompt

    examples, per_problem = [], {}
    for s in labelled:
        if s.outcome == outcomes.PASSED_TEST:
            continue
        if max_per_problem is not None and per_problem.get(s.task_id, 0) >= max_per_problem:
            continue
        problem = problems_by_id[s.task_id]
        prompt = repair_prompt(problem, s.code, s.outcome, s.error_type, tokenizer,
                               max_source_length)
        for solution in problem.solutions:
            inputs, targets = encode_pair(tokenizer, prompt, solution)
            if len(targets) <= max_target_length and len(inputs) <= max_source_length:
                examples.append({"task_id": s.task_id, "inputs": inputs, "targets": targets})
                per_problem[s.task_id] = per_problem.get(s.task_id, 0) + 1
                break
    return examples


def train_repair(workdir: str, *, samples: str, results: str, dataset: str,
                 trainer: loop.TrainerConfig, optimizer: OptimizerConfig,
                 data: str | None = None, init_model: str | None = None,
                 tokenizer: str | None = None, max_source_length: int = 600,
                 max_target_length: int = 512, holdout_fraction: float = 0.05,
                 max_per_problem: int | None = None,
                 verdict_policy: str = outcomes.DEFAULT_VERDICT_POLICY,
                 allow_verdict_policy_mismatch: bool = False, loader: Loader = load_init,
                 log: Callable[[str], None] = print) -> pathlib.Path:
    """Train the repair model; returns its model dir (workdir/model). verdict_policy: as
    `train_critic`'s (the results file must have been judged with it)."""
    d = load_labelled_data(samples, results, dataset, data, init_model, tokenizer,
                           holdout_fraction, trainer.seed, loader,
                           verdict_policy=verdict_policy,
                           allow_verdict_policy_mismatch=allow_verdict_policy_mismatch,
                           log=log)
    problems, labelled, internal, init = d.problems, d.labelled, d.internal_errors, d.init
    train_set = set(d.train_ids)
    examples = repair_examples([s for s in labelled if s.task_id in train_set], problems,
                               init.tokenizer, max_source_length, max_target_length,
                               max_per_problem)
    heldout = repair_examples([s for s in labelled if s.task_id not in train_set], problems,
                              init.tokenizer, max_source_length, max_target_length,
                              max_per_problem)
    log(f"[train-repair] {len(examples)} (failed sample -> reference) pairs, {len(heldout)} "
        f"held out; {internal} InternalError samples dropped")
    if not examples:
        raise ValueError(f"train-repair: {samples} has no failed sample of a problem with a "
                         "reference solution that fits; nothing to learn from")
    return train_supervised(workdir, init, examples, max_source_length=max_source_length,
                            max_target_length=max_target_length, heldout_examples=heldout,
                            trainer=trainer, optimizer=optimizer, desc="train-repair",
                            log=log)
