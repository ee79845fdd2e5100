"""Text in, programs out: load a model by name, read a prompts file, sample, write samples.

The library half of `coderl generate` (eval/generate.py only parses arguments). The token-level
work is `decoding.sample`; this module adds tokenization, batching, progress and file formats:

  prompts file (JSONL): one `{"task_id": ..., "prompt": "..."}` per line.
  samples file (JSONL): one `{"task_id": ..., "code": "..."}` per sample, N consecutive lines
                        per prompt, prompts in input order (DESIGN.md, Formats).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import pathlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import jax
import numpy as np

from coderl_jax import checkpoints
from coderl_jax.data import jsonl
from coderl_jax.data.prompts import truncate_prompt
from coderl_jax.decoding import SamplingParams, sample

log = logging.getLogger(__name__)


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
    """(config, params, tokenizer) from our model dir, a Hugging Face dir, or a hub id.

    Our model dir (config.json + checkpoints/, see `checkpoints.save_model_dir`) is checked
    first; anything else goes to the Hugging Face loader (local dir or hub id).
    """
    from coderl_jax.data.tokenizer import load_tokenizer
    from coderl_jax.models import hf

    if checkpoints.is_model_dir(spec):
        config, params = checkpoints.load_model_dir(spec, step=step)
    else:
        if step is not None:
            raise ValueError(f"--step applies to our checkpoint dirs only; {spec} is not one")
        config, params = hf.load_hf(spec)
    tokenizer = load_tokenizer(spec)
    return config, params, tokenizer


def _batches(n: int, size: int) -> Iterator[range]:
    for start in range(0, n, size):
        yield range(start, min(start + size, n))


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
    on_batch: Callable[[range, list[list[str]]], None] | None = None,
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
    n = sampling.num_samples
    rng = jax.random.key(seed)
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
    results: list[list[str]] = []
    for idx in _batches(len(prompts), batch_size):
        rows = [encoded[i][:max_source_length] for i in idx]
        width = max(len(r) for r in rows)
        input_ids = np.full((len(rows), width), config.pad_token_id, np.int32)
        input_mask = np.zeros((len(rows), width), np.int32)
        for j, r in enumerate(rows):
            input_ids[j, : len(r)] = r
            input_mask[j, : len(r)] = 1
        sample_ids = np.asarray([i * n + k for i in idx for k in range(n)], np.int32)
        out = sample(
            config, params, input_ids, input_mask, rng, sampling,
            sample_ids=sample_ids, pad_batch_to=batch_size,
        )
        tokens, lengths = np.asarray(out.tokens), np.asarray(out.lengths)
        batch_results = []
        for j in range(len(rows)):
            texts = []
            for k in range(n):
                row = tokens[j * n + k, : lengths[j * n + k]].tolist()
                texts.append(tokenizer.decode(row, skip_special_tokens=True))
            batch_results.append(texts)
        results.extend(batch_results)
        if on_batch is not None:
            on_batch(idx, batch_results)
    return results


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
    from tqdm import tqdm

    prompts = read_prompts(prompts_path)  # validate the whole file before loading the model
    config, params, tokenizer = load_model(model, step=step)
    out_path = pathlib.Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    written = 0
    with out_path.open("w") as out, tqdm(
        total=len(prompts), unit="prompt", desc="generate", disable=not progress
    ) as bar:

        def write(idx: range, batch_results: list[list[str]]) -> None:
            nonlocal written
            for i, codes in zip(idx, batch_results):
                for code in codes:
                    out.write(json.dumps({"task_id": prompts[i].task_id, "code": code}) + "\n")
                    written += 1
            out.flush()
            bar.update(len(idx))

        generate_samples(
            config, params, tokenizer, [p.prompt for p in prompts], sampling,
            seed=seed, batch_size=batch_size, max_source_length=max_source_length,
            on_batch=write,
        )
    return written
