"""Labelled samples: a samples file joined with its results file, line by line.

The one reader of sandbox-labelled programs, for everything that learns from them: the
critic and the repair model (`load_labelled_data`), and offline RL (`rl/offline.py`).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from coderl_jax import outcomes
from coderl_jax.training.model_io import InitModel, Loader, load_init
from coderl_jax.training.sources import split_holdout


@dataclasses.dataclass(frozen=True)
class LabelledSample:
    """A sampled program with its sandbox verdict (one line of samples + results files).

    tokens: the exact ids an online run sampled, when the samples line carries them
    ("tokens", as `RLConfig.save_rollouts` writes them); None otherwise. test_results: the
    per-test codes of the results line (APPS convention: -2, -1, False, True).
    """

    task_id: str
    code: str
    outcome: str
    error_type: str | None
    line: int
    test_results: tuple = ()
    tokens: tuple[int, ...] | None = None

    @property
    def passed(self) -> bool:
        return self.outcome == outcomes.PASSED_TEST

    @property
    def reward(self) -> float | None:
        """The paper's return of the outcome (as the sandbox's Verdict; None if unjudged)."""
        return outcomes.RETURNS.get(self.outcome)


def read_labelled_samples(samples_path, results_path, problems_by_id: dict[str, Any], *,
                          keep_internal: bool = False, verdict_policy: str | None = None,
                          allow_verdict_policy_mismatch: bool = False,
                          log=print) -> tuple[list[LabelledSample], int]:
    """Samples joined with their results, checked line by line; InternalError samples are
    dropped and counted (never labelled, never rewarded), or kept with `keep_internal` (for
    a consumer that counts them itself, such as the RL batch).

    Returns (labelled samples, number of InternalError samples). Errors name the file and
    line: a results file that does not match its samples file (count, order, task ids) or a
    task id that is not in the problem set. With `verdict_policy`, the results file's
    recorded policy must be that one (`outcomes.check_verdict_policy`).
    """
    from coderl_jax.data import jsonl

    samples = jsonl.read_samples(samples_path)
    tokens = [record.get("tokens") for _, record in jsonl.read_jsonl(samples_path)]
    results = jsonl.read_results(results_path)
    if verdict_policy is not None:
        where = str(results_path)
        note = outcomes.check_verdict_policy(
            outcomes.records_verdict_policy(results, where), verdict_policy, where=where,
            allow_mismatch=allow_verdict_policy_mismatch)
        if note:
            log(note)
    if len(results) != len(samples):
        raise jsonl.JsonlError(results_path, min(len(results), len(samples)) + 1,
                               f"{len(results)} results for {len(samples)} samples in "
                               f"{samples_path}; a results file has one line per sample")
    out, internal = [], 0
    for index, (sample, result) in enumerate(zip(samples, results)):
        if result["sample_index"] != index or str(result["task_id"]) != sample.task_id:
            raise jsonl.JsonlError(
                results_path, index + 1,
                f"result (task {result['task_id']!r}, sample_index {result['sample_index']}) "
                f"does not match line {sample.line} of {samples_path} (task {sample.task_id!r})")
        if sample.task_id not in problems_by_id:
            raise jsonl.JsonlError(samples_path, sample.line,
                                   f"task_id {sample.task_id!r} is not in the problem set")
        if result["outcome"] == outcomes.INTERNAL_ERROR:
            internal += 1
            if not keep_internal:
                continue
        problem = problems_by_id[sample.task_id]
        ids = tokens[index]
        out.append(LabelledSample(sample.task_id, sample.program(problem.question),
                                  result["outcome"], result["error_type"], sample.line,
                                  tuple(result.get("test_results") or ()),
                                  None if ids is None else tuple(int(i) for i in ids)))
    return out, internal


@dataclasses.dataclass
class LabelledData:
    """What train-critic and train-repair start from: the problems, the labelled samples
    split by problem into train and held-out, and the starting model."""

    problems: dict
    labelled: list
    internal_errors: int
    init: InitModel
    train_ids: list
    held_ids: list


def load_labelled_data(samples, results, dataset: str, data, init_model: str | None,
                       tokenizer: str | None, holdout_fraction: float, seed: int,
                       loader: Loader = load_init, verdict_policy: str | None = None,
                       allow_verdict_policy_mismatch: bool = False,
                       log=print) -> LabelledData:
    """Problems, samples joined with results (`read_labelled_samples`, checked against
    `verdict_policy` when given), the starting model (`loader(init_model, tokenizer)`), and
    the task ids split into train / held-out."""
    from coderl_jax.data import loaders

    problems = {p.task_id: p for p in loaders.load_problems(dataset, data)}
    labelled, internal = read_labelled_samples(
        samples, results, problems, verdict_policy=verdict_policy,
        allow_verdict_policy_mismatch=allow_verdict_policy_mismatch, log=log)
    init = loader(init_model, tokenizer)
    ids = sorted({s.task_id for s in labelled})
    train_ids, held_ids = split_holdout(ids, holdout_fraction, seed)
    return LabelledData(problems, labelled, internal, init, train_ids, held_ids)


def encode_pair(tokenizer, prompt: str, program: str) -> tuple[list[int], list[int]]:
    """(framed prompt ids `<s> ... </s>`, program ids + EOS) as every model here reads them."""
    inputs = tokenizer(prompt, add_special_tokens=True)["input_ids"]
    targets = tokenizer.encode(program, add_special_tokens=False) + [tokenizer.eos_token_id]
    return inputs, targets
