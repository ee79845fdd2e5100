"""What the training stages share: the starting model, supervised batches, labelled samples,
held-out splits and evaluation, and the model dir written at the end.

A stage starts from scratch (the gin-bound `model_config` and a tokenizer dir), from one of
our model dirs, or from a Hugging Face dir / hub id (`Salesforce/codet5-large-ntp-py`):
`load_init`. It ends by writing `workdir/model` (`save_final`), which `coderl generate`,
the next stage or the RL learner loads.
"""

from __future__ import annotations

import dataclasses
import pathlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import gin
import jax
import numpy as np

from coderl_jax import checkpoints, outcomes
from coderl_jax.training import batch as batch_lib
from coderl_jax.training import loop

MODEL_SUBDIR = "model"


@dataclasses.dataclass
class InitModel:
    """The starting point of a stage: config, params (None = random init), tokenizer."""

    config: Any
    params: Any
    tokenizer: Any
    source: str


@gin.configurable(module="coderl_jax.training")
def load_init(init_model: str | None, tokenizer: str | None, *, dtype: str | None = None,
              dropout_rate: float | None = None) -> InitModel:
    """Our model dir / HF dir / hub id (`init_model`), or scratch: the gin-bound
    `model_config()` with the tokenizer dir `tokenizer` (required then).

    A loaded model keeps its own shape (T5Config gin bindings describe a model built from
    scratch); how it computes is set here: `dtype` ("bfloat16": mixed precision, float32
    master weights) and `dropout_rate` (bind `load_init.dtype = "bfloat16"`).
    """
    from coderl_jax.data.tokenizer import load_tokenizer

    if init_model:
        if checkpoints.is_model_dir(init_model):
            config, params = _load_our_model_dir(init_model)
            tok = load_tokenizer(tokenizer or init_model)
        else:
            from coderl_jax.generation import load_model

            config, params, tok = load_model(init_model)
            if tokenizer:
                tok = load_tokenizer(tokenizer)
        source = init_model
    else:
        if not tokenizer:
            raise ValueError("training from scratch needs a tokenizer dir (tokenizer=...); "
                             "or start from a model (init_model=...)")
        from coderl_jax.models.config import model_config

        config, params, tok, source = model_config(), None, load_tokenizer(tokenizer), "scratch"
    overrides = {k: v for k, v in (("dtype", dtype), ("dropout_rate", dropout_rate))
                 if v is not None}
    if overrides:
        config = config.replace(**overrides)
    if len(tok) > config.vocab_size:
        raise ValueError(f"the tokenizer has {len(tok)} tokens but the model's vocab_size is "
                         f"{config.vocab_size}")
    return InitModel(config, params, tok, source)


def _load_our_model_dir(model_dir: str) -> tuple[Any, Any]:
    """(config, params) of our model dir (actor or critic), restored onto this process's
    first device: every process of a multi-host run holds the whole starting point, and
    `state.create_state` places it into the mesh."""
    from coderl_jax.training.step import ActorModel, CriticModel

    config = checkpoints.load_model_config(model_dir)
    classes = checkpoints.critic_classes(model_dir)
    model = ActorModel(config) if classes is None else CriticModel(config, len(classes))
    device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
    shardings = jax.tree.map(lambda _: device, jax.eval_shape(model.init, jax.random.key(0)))
    return checkpoints.load_model_dir(model_dir, shardings=shardings)


def save_final(workdir: str | pathlib.Path, init: InitModel, state, *,
               critic_classes: Sequence[str] | None = None,
               metadata: dict | None = None) -> pathlib.Path:
    """Write `workdir/model` (config, tokenizer, final params), replacing the one a previous
    run of this workdir wrote (a rerun of a finished run writes it again); every process
    takes part in the (collective) orbax write of the sharded params."""
    import shutil

    out = pathlib.Path(workdir) / MODEL_SUBDIR
    if jax.process_index() == 0 and out.exists():
        shutil.rmtree(out)
    loop.sync_processes("coderl_save_final")
    # The tokenizer from process 0 only: `save_tokenizer` reads back a file it wrote, which
    # another process rewriting it at the same time would truncate under it. (The small
    # config/critic JSON files are written whole by every process, the same bytes.)
    tokenizer = init.tokenizer if jax.process_index() == 0 else None
    return checkpoints.save_model_dir(out, init.config, state.params, tokenizer=tokenizer,
                                      step=int(jax.device_get(state.step)),
                                      critic_classes=critic_classes, metadata=metadata)


def split_holdout(problems: Sequence[Any], fraction: float, seed: int
                  ) -> tuple[list[Any], list[Any]]:
    """(train, held-out) by problem: a seeded `fraction` of the problems is held out, so
    held-out numbers measure new problems, never a reference or sample seen in training."""
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"holdout fraction must be in [0, 1), got {fraction}")
    n_hold = int(round(fraction * len(problems)))
    order = np.random.default_rng([seed, 7919]).permutation(len(problems))
    held = set(order[:n_hold].tolist())
    train = [p for i, p in enumerate(problems) if i not in held]
    return train, [p for i, p in enumerate(problems) if i in held]


def make_batch_stream(examples: Sequence[dict], batch_size: int, encoder_length: int,
                      decoder_length: int, seed: int, kind: str = "ce"
                      ) -> Callable[[int], Iterator[batch_lib.Batch]]:
    """start_batch -> this process's rows of each global batch, CE- or critic-weighted.

    The normaliser (tokens for CE, rows for the critic) is the global batch's, computed
    from the global rows every process knows, so shards add up to the full-batch loss.
    """
    def make(start: int) -> Iterator[batch_lib.Batch]:
        local_size = batch_size // jax.process_count()
        for rows in loop.example_stream(examples, batch_size, seed, start):
            mine = loop.process_rows(rows)
            if kind == "ce":
                tokens = sum(len(r["targets"]) for r in rows)
                yield batch_lib.ce_batch(mine, local_size, encoder_length, decoder_length,
                                         num_tokens=tokens)
            else:
                yield batch_lib.critic_batch(mine, local_size, encoder_length, decoder_length,
                                             num_rows=len(rows))
    return make


def fixed_batches(examples: Sequence[dict], batch_size: int, encoder_length: int,
                  decoder_length: int, kind: str = "ce") -> list[batch_lib.Batch]:
    """Every example once, in order, in batches of `batch_size` (evaluation)."""
    build = batch_lib.ce_batch if kind == "ce" else batch_lib.critic_batch
    return [build(examples[i:i + batch_size], batch_size, encoder_length, decoder_length)
            for i in range(0, len(examples), batch_size)]


def heldout_nll(model, state, batches: Sequence[batch_lib.Batch]) -> float:
    """Mean -log p per real target token of held-out CE batches (teacher forcing)."""
    from coderl_jax.training.step import ActorModel

    assert isinstance(model, ActorModel)
    fn = _log_prob_fn(model)
    total, tokens = 0.0, 0.0
    for b in batches:
        logp = np.asarray(fn(state.params, b))
        total += float(-(logp * b.decoder_mask).sum())
        tokens += float(b.decoder_mask.sum())
    return total / max(tokens, 1.0)


_LOG_PROB_FNS: dict = {}


def _log_prob_fn(model):
    if model not in _LOG_PROB_FNS:
        _LOG_PROB_FNS[model] = jax.jit(lambda params, b: model.log_probs(params, b))
    return _LOG_PROB_FNS[model]


def greedy_pass_rate(config, params, tokenizer, problems: Sequence[Any], executor, *,
                     max_source_length: int, max_new_tokens: int, batch_size: int = 8) -> float:
    """Share of `problems` whose greedy program passes the hidden tests (pass@1 greedy)."""
    from coderl_jax.decoding import SamplingParams
    from coderl_jax.generation import generate_for_problems

    if not problems:
        return float("nan")
    programs = generate_for_problems(config, params, tokenizer, problems,
                                     SamplingParams(greedy=True, max_new_tokens=max_new_tokens),
                                     batch_size=batch_size, max_source_length=max_source_length)
    futures = [executor.submit(p, progs[0]) for p, progs in zip(problems, programs)]
    return float(np.mean([f.result().passed for f in futures]))


# ------------------------------------------------------------------ samples + results files
@dataclasses.dataclass(frozen=True)
class LabelledSample:
    """A sampled program with its sandbox verdict (one line of samples + results files)."""

    task_id: str
    code: str
    outcome: str
    error_type: str | None
    line: int


def read_labelled_samples(samples_path, results_path, problems_by_id: dict[str, Any]
                          ) -> tuple[list[LabelledSample], int]:
    """Samples joined with their results, checked line by line; InternalError samples are
    dropped and counted (never labelled, never rewarded).

    Returns (labelled samples, number of InternalError samples dropped). Errors name the
    file and line: a results file that does not match its samples file (count, order,
    task ids) or a task id that is not in the problem set.
    """
    from coderl_jax.data import jsonl

    samples = jsonl.read_samples(samples_path)
    results = jsonl.read_results(results_path)
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
            continue
        problem = problems_by_id[sample.task_id]
        out.append(LabelledSample(sample.task_id, sample.program(problem.question),
                                  result["outcome"], result["error_type"], sample.line))
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
                       tokenizer: str | None, holdout_fraction: float, seed: int
                       ) -> LabelledData:
    """Problems, samples joined with results (`read_labelled_samples`), the starting model,
    and the task ids split into train / held-out (`split_holdout`)."""
    from coderl_jax.data import loaders

    problems = {p.task_id: p for p in loaders.load_problems(dataset, data)}
    labelled, internal = read_labelled_samples(samples, results, problems)
    init = load_init(init_model, tokenizer)
    ids = sorted({s.task_id for s in labelled})
    train_ids, held_ids = split_holdout(ids, holdout_fraction, seed)
    return LabelledData(problems, labelled, internal, init, train_ids, held_ids)


def encode_pair(tokenizer, prompt: str, program: str) -> tuple[list[int], list[int]]:
    """(framed prompt ids `<s> ... </s>`, program ids + EOS) as every model here reads them."""
    inputs = tokenizer(prompt, add_special_tokens=True)["input_ids"]
    targets = tokenizer.encode(program, add_special_tokens=False) + [tokenizer.eos_token_id]
    return inputs, targets
