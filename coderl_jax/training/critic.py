"""Training the critic on programs labelled by the sandbox (CodeRL Sec. 3.2).

Training rows: every sampled program of a samples file with its outcome from the results
file (CompileError / RuntimeError / FailedTest / PassedTest; InternalError rows are dropped
and counted), plus each problem's ground-truth programs labelled PassedTest. `binary=True`
trains the inference-time critic over {FailedTest, PassedTest} (every non-pass is a fail).
The backbone starts from an actor (our model dir, a HF dir / hub id) or from scratch; the
error head starts random. Problems are split into train and held-out by a seeded share, and
the held-out accuracy, per-class recall and confusion are logged and written to
`workdir/critic_eval.json`.
"""

from __future__ import annotations

import json
import pathlib
from typing import Callable

import jax
import numpy as np

from coderl_jax import outcomes
from coderl_jax.training import batch as batch_lib
from coderl_jax.training import evaluation, loop, sources
from coderl_jax.training.labelled import encode_pair, load_labelled_data
from coderl_jax.training.model_io import Loader, load_init, save_final
from coderl_jax.training.optimizer import OptimizerConfig
from coderl_jax.training.step import CriticModel

EVAL_FILE = "critic_eval.json"
CLASS_WEIGHTINGS = ("none", "balanced")


def class_weights(labels, num_classes: int, weighting: str) -> np.ndarray:
    """Per-class loss weights [C]: "none" all 1; "balanced" N / (C_present * count_c), so
    every class present carries the same total weight (absent classes 0)."""
    if weighting not in CLASS_WEIGHTINGS:
        raise ValueError(f"class_weighting must be one of {CLASS_WEIGHTINGS}, got {weighting!r}")
    counts = np.bincount(np.asarray(labels, int), minlength=num_classes).astype(np.float64)
    if weighting == "none":
        return np.ones(num_classes)
    present = counts > 0
    return np.where(present, counts.sum() / (present.sum() * np.maximum(counts, 1)), 0.0)


def critic_examples(labelled, problems_by_id, task_ids, tokenizer, binary: bool,
                    max_source_length: int, max_target_length: int,
                    include_references: bool = True) -> tuple[list[dict], int]:
    """({"task_id", "inputs", "targets", "label"} rows, number of too-long programs skipped)."""
    from coderl_jax.data.prompts import format_prompt

    prompts = {t: format_prompt(problems_by_id[t], tokenizer, max_source_length)
               for t in task_ids}
    rows, skipped = [], 0

    def add(task_id, code, outcome):
        nonlocal skipped
        inputs, targets = encode_pair(tokenizer, prompts[task_id], code)
        if len(targets) > max_target_length:
            skipped += 1
            return
        rows.append({"task_id": task_id, "inputs": inputs, "targets": targets,
                     "label": outcomes.outcome_index(outcome, binary=binary)})

    wanted = set(task_ids)
    for s in labelled:
        if s.task_id in wanted:
            add(s.task_id, s.code, s.outcome)
    if include_references:
        for t in task_ids:
            for solution in problems_by_id[t].solutions:
                add(t, solution, outcomes.PASSED_TEST)
    return rows, skipped


def _start_params(init, num_classes: int, seed: int):
    """The critic's starting params: a critic dir's own, or an actor's network as the
    backbone with a random head; None (random init) from scratch."""
    from coderl_jax.models.family import family_for

    if init.params is None:
        return None
    if "backbone" in init.params:  # a critic dir: continue from it
        return init.params
    family = family_for(init.config)
    head = family.critic_init(num_classes, jax.random.key(seed))
    return {"backbone": family.critic_backbone(init.params), "head": head["head"]}


def _rows(d, classes, binary: bool, max_source_length: int, max_target_length: int,
          include_references: bool, class_weighting: str, log) -> tuple[list, list]:
    """(training rows with their class weights, held-out rows without references) of the
    labelled data `d`, logged with their class counts."""
    args = (d.problems, d.init.tokenizer, binary, max_source_length, max_target_length)
    rows, skipped = critic_examples(d.labelled, args[0], d.train_ids, *args[1:],
                                    include_references=include_references)
    weights = class_weights([r["label"] for r in rows], len(classes), class_weighting)
    rows = [dict(r, class_weight=float(weights[r["label"]])) for r in rows]
    held, held_skipped = critic_examples(d.labelled, args[0], d.held_ids, *args[1:],
                                         include_references=False)
    counts = np.bincount([r["label"] for r in rows], minlength=len(classes))
    by_class = ", ".join(f"{c} {n}" for c, n in zip(classes, counts))
    log(f"[train-critic] {len(rows)} rows ({by_class}) "
        f"from {len(d.train_ids)} problems, {len(held)} held-out rows from "
        f"{len(d.held_ids)}; {d.internal_errors} InternalError samples dropped, "
        f"{skipped + held_skipped} programs longer than {max_target_length} tokens skipped")
    return rows, held


def train_critic(workdir: str, *, samples: str, results: str, dataset: str,
                 trainer: loop.TrainerConfig, optimizer: OptimizerConfig,
                 data: str | None = None, binary: bool = False,
                 init_model: str | None = None, tokenizer: str | None = None,
                 max_source_length: int = 600, max_target_length: int = 512,
                 holdout_fraction: float = 0.1, include_references: bool = True,
                 class_weighting: str = "none",
                 verdict_policy: str = outcomes.DEFAULT_VERDICT_POLICY,
                 allow_verdict_policy_mismatch: bool = False,
                 loader: Loader = load_init, log: Callable[[str], None] = print
                 ) -> pathlib.Path:
    """Train the 4-class (or, with binary, the 2-class) critic; returns its model dir.

    include_references: the problems' reference programs in its training rows (labelled
    PassedTest) or out. class_weighting: "none" (every row weighs 1) or "balanced" (rows
    weighted N / (C * count of their class), `class_weights`).

    verdict_policy: the policy its labels must have been judged with (checked against the
    results file; a mismatch fails unless allow_verdict_policy_mismatch), written to the
    model dir's `outcomes.VERDICT_POLICY_FILE` for RL's start-up check."""
    classes = outcomes.BINARY_OUTCOMES if binary else outcomes.OUTCOMES
    d = load_labelled_data(samples, results, dataset, data, init_model, tokenizer,
                           holdout_fraction, trainer.seed, loader,
                           verdict_policy=verdict_policy,
                           allow_verdict_policy_mismatch=allow_verdict_policy_mismatch,
                           log=log)
    init, internal, held_ids = d.init, d.internal_errors, d.held_ids
    rows, held = _rows(d, classes, binary, max_source_length, max_target_length,
                       include_references, class_weighting, log)
    if not rows:
        raise ValueError(f"train-critic: no labelled programs in {samples}")

    model = CriticModel(init.config, len(classes))
    params = _start_params(init, len(classes), trainer.seed)
    held_batches = evaluation.fixed_batches(held, trainer.batch_size, max_source_length,
                                            max_target_length, build=batch_lib.critic_batch)

    def evaluate(state) -> dict:
        if not held_batches:
            return {}
        report = evaluation.critic_report(init.config, state.params, held_batches, classes)
        return {"heldout_accuracy": report["accuracy"]}

    state = loop.run_training(
        workdir=workdir, model=model, trainer=trainer, optimizer=optimizer,
        init_params=(lambda: params) if params is not None else None,
        source=sources.supervised_stream(rows, trainer.batch_size, max_source_length,
                                         max_target_length, trainer.seed,
                                         weighting=sources.critic_rows),
        eval_fn=evaluate, log=log, desc="train-critic")
    report = (evaluation.critic_report(init.config, state.params, held_batches, classes)
              if held_batches else {})
    report.update(train_rows=len(rows), heldout_problems=len(held_ids),
                  internal_errors_dropped=internal, include_references=include_references,
                  class_weighting=class_weighting, verdict_policy=verdict_policy)
    if jax.process_index() == 0:
        pathlib.Path(workdir, EVAL_FILE).write_text(json.dumps(report, indent=2) + "\n")
    if report.get("rows"):
        log(f"[train-critic] held-out accuracy {report['accuracy']:.3f} (majority baseline "
            f"{report['majority_baseline']:.3f}, {report['majority_class']}) on "
            f"{report['rows']} rows")
    out = save_final(workdir, init, state, critic_classes=classes,
                     metadata={"stage": "train-critic", "init": init.source,
                               "verdict_policy": verdict_policy})
    write_verdict_policy(out, verdict_policy)
    return out


def write_verdict_policy(model_dir, policy: str) -> None:
    """Records the verdict policy of a model's training labels in its model dir."""
    if jax.process_index() == 0:
        pathlib.Path(model_dir, outcomes.VERDICT_POLICY_FILE).write_text(
            json.dumps({"verdict_policy": outcomes.validate_verdict_policy(policy)}) + "\n")
