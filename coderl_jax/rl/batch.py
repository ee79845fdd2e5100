"""The RL batch: judged rollouts -> the one weighted `Batch` of the train step (pure, host).

    batch, stats = build_rl_batch(groups, token_probs, reference_log_probs, cfg,
                                  batch_rows=..., encoder_length=..., decoder_length=...)

Rows: the CE rows (RLConfig.ce_per_sample: that many references drawn at random (seeded)
from each sample's problem per RL sample, the official release's pairing (default 1); 0:
one reference per problem), weight ce_weight / N_ce per token; then one RL row per judged
sample (the return estimator's token weights (`rl/returns.py`) * rl_weight * the
normalisation's scale (RLConfig.rl_normalisation, `NORMALISATIONS`), scored at the sampling
temperature; with kl_coef > 0 also kl_coef * scale KL weights and the reference's
log-probs). N_ce, N_rl (real target tokens) and S_rl (RL rows) are counted over ALL
processes (`batch.global_count`), so every process's shard adds up to the global loss.
Online and offline RL share this function.

Shapes (STYLE.md practice 4): `bucket_lengths` rounds the batch's longest prompt and
program up to one of a few buckets (RLConfig.length_buckets: fractions of the maximum
lengths), the same on every process, so the step compiles once per bucket and an update
no longer pays for the full max_source_length x max_new_tokens when its rows are short.
Padding never changes the loss (masked positions have weight 0 and are masked out of
attention); tests/test_rl_signals.py checks a bucketed batch's loss against the fully
padded one's.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from coderl_jax import outcomes
from coderl_jax.rl import returns as returns_lib
from coderl_jax.training import batch as batch_lib


@dataclasses.dataclass
class Group:
    """One problem's rollouts: K samples (token ids ending in EOS unless cut at the length
    limit), their outcomes and rewards (`rl/rewards.py`; NaN for InternalError), and the
    greedy baseline's outcome and reward (None: not judged / unused)."""

    task_id: str
    prompt_ids: list[int]
    reference_ids: list[int] | None
    samples: list[list[int]]
    outcomes: list[str]
    baseline_outcome: str | None
    rewards: list[float] | None = None
    baseline_reward: float | None = None
    references: list[list[int]] | None = None  # every reference that fits (CE draws)

    def judged(self, i: int) -> bool:
        return self.outcomes[i] != outcomes.INTERNAL_ERROR

    @property
    def baseline_judged(self) -> bool:
        return self.baseline_outcome not in (None, outcomes.INTERNAL_ERROR)


# L_rl normalisations: (row lengths [N], N_rl global tokens, S_rl global rows) -> scale [N].
NORMALISATIONS = {
    # per-sequence token mean, averaged over sequences (the official release; default)
    "sequence": lambda lengths, n_tokens, n_rows: 1.0 / (np.maximum(lengths, 1)
                                                       * max(n_rows, 1.0)),
    # mean over every RL token of the step
    "token": lambda lengths, n_tokens, n_rows: np.full(len(lengths), 1.0 / max(n_tokens, 1.0)),
    # the paper's equation: per-sequence token sum, averaged over sequences
    "sum": lambda lengths, n_tokens, n_rows: np.full(len(lengths), 1.0 / max(n_rows, 1.0)),
}
DEFAULT_NORMALISATION = "sequence"


def register_normalisation(name: str, fn) -> None:
    """Adds an L_rl normalisation `(lengths [N], n_tokens, n_rows) -> per-row scale [N]`."""
    NORMALISATIONS[name] = fn


def ce_rows(groups: Sequence[Group], per_sample: int, seed: int) -> list[dict]:
    """The CE rows: per_sample references per sample, drawn uniformly (with replacement)
    from the sample's problem's references with a `seed`ed generator; per_sample 0: each
    problem's first reference once. Problems without a reference give none."""
    if per_sample == 0:
        return [{"task_id": g.task_id, "inputs": g.prompt_ids, "targets": g.reference_ids}
                for g in groups if g.reference_ids is not None]
    rng = np.random.default_rng(seed)
    rows = []
    for g in groups:
        pool = g.references or ([g.reference_ids] if g.reference_ids is not None else [])
        if not pool:
            continue
        for _ in range(len(g.samples) * per_sample):
            rows.append({"task_id": g.task_id, "inputs": g.prompt_ids,
                         "targets": pool[int(rng.integers(len(pool)))]})
    return rows


def bucket_length(needed: int, maximum: int, buckets) -> int:
    """The smallest bucket ceil(f * maximum), f in `buckets`, that holds `needed` tokens
    (`maximum` itself if none does, or without buckets)."""
    fits = [int(np.ceil(f * maximum)) for f in sorted(buckets)]
    return next((n for n in fits if n >= needed), maximum)


def bucket_lengths(groups: Sequence[Group], cfg) -> tuple[int, int]:
    """(encoder, decoder) length of the RL batch of `groups`: every process's longest prompt
    and longest program (reference or sample) rounded up to a bucket of cfg.length_buckets
    (cfg.max_source_length / cfg.max_new_tokens without buckets)."""
    if not cfg.length_buckets:
        return cfg.max_source_length, cfg.max_new_tokens
    prompts = max((len(g.prompt_ids) for g in groups), default=1)
    programs = max((len(ids) for g in groups
                    for ids in [*g.samples, *([g.reference_ids] if g.reference_ids else []),
                                *(g.references or [])]),
                   default=1)
    prompts, programs = batch_lib.global_max(np.asarray([prompts, programs])).tolist()
    return (bucket_length(prompts, cfg.max_source_length, cfg.length_buckets),
            bucket_length(programs, cfg.max_new_tokens, cfg.length_buckets))


def _rl_rows(groups: Sequence[Group], token_probs, cfg, decoder_length: int, stats: dict):
    """The kept samples as rows, with the estimator's inputs [N], [N, T]."""
    rows, returns, baselines, group_ids, values, masks = [], [], [], [], [], []
    flat = 0
    for g_index, g in enumerate(groups):
        if g.rewards is None:
            raise ValueError(f"group {g.task_id!r} has no rewards (judge it first)")
        for i, ids in enumerate(g.samples):
            index = flat
            flat += 1
            if not g.judged(i):
                stats["dropped_internal"] += 1
                continue
            if cfg.needs_baseline and not g.baseline_judged:
                stats["dropped_no_baseline"] += 1
                continue
            t = len(ids)
            rows.append({"task_id": g.task_id, "inputs": g.prompt_ids, "targets": ids,
                         "sample": index, "temperature": cfg.temperature})
            returns.append(g.rewards[i])
            baselines.append(g.baseline_reward if g.baseline_judged else 0.0)
            group_ids.append(g_index)
            mask = np.zeros(decoder_length, np.float32)
            mask[:t] = 1.0
            masks.append(mask)
            q = np.ones(decoder_length, np.float32)
            if token_probs is not None:
                q[:t] = token_probs[index][:t, outcomes.outcome_index(g.outcomes[i])]
            values.append(q)
    return rows, returns, baselines, group_ids, values, masks


def build_rl_batch(groups: Sequence[Group], token_probs: Sequence[np.ndarray] | None,
                   reference_log_probs: Sequence[np.ndarray] | None, cfg, *,
                   batch_rows: int, encoder_length: int, decoder_length: int,
                   part: str = "both", seed: int = 0) -> tuple[batch_lib.Batch, dict]:
    """The weighted batch of one step, from judged rollouts (pure, host-side).

    Args:
      groups: this process's problems, with rewards.
      token_probs: per sample (every group's samples in order, InternalError ones included),
        the critic's per-token class probabilities [T, 4] (None when the estimator needs no
        critic).
      reference_log_probs: per sample (same order), log p_ref [T] (None when kl_coef == 0).
      cfg: the `RLConfig`.
      part: "both" (the summed objective), "ce" or "rl" (one update of "alternate").
      seed: draws the CE rows' references (`ce_rows`).
    Returns:
      (numpy Batch [batch_rows, encoder_length / decoder_length], statistics of the kept
      samples). InternalError samples are dropped (counted); with an estimator that needs
      the baseline, a problem whose baseline was not judged contributes its CE row only.
    """
    stats = {"dropped_internal": 0, "dropped_no_baseline": 0}
    ce = ce_rows(groups, cfg.ce_per_sample, seed)
    rl_rows, returns, baselines, group_ids, values, masks = _rl_rows(
        groups, token_probs, cfg, decoder_length, stats)
    n_rl = batch_lib.global_count(sum(len(r["targets"]) for r in rl_rows))
    n_ce = batch_lib.global_count(sum(len(r["targets"]) for r in ce))
    n_rows = batch_lib.global_count(len(rl_rows))
    if rl_rows:
        weights = returns_lib.token_weights(
            cfg.estimator, sample_returns=np.asarray(returns, np.float32),
            mask=np.stack(masks), baseline_returns=np.asarray(baselines, np.float32),
            group_ids=np.asarray(group_ids), token_values=np.clip(np.stack(values), 0.0, 1.0),
            **cfg.estimator_options)
        on = part in ("both", "rl")
        scale = NORMALISATIONS[cfg.rl_normalisation](
            np.asarray([len(r["targets"]) for r in rl_rows], np.float64), n_rl, n_rows)
        for row, w, c in zip(rl_rows, weights, scale):
            t = len(row["targets"])
            row["token_weights"] = (w[:t] * (cfg.rl_weight * c) * on).astype(np.float32)
            if cfg.kl_coef and reference_log_probs is not None:
                row["kl_weights"] = np.full(t, cfg.kl_coef * c * on, np.float32)
                row["reference_log_probs"] = reference_log_probs[row["sample"]][:t]
    on = part in ("both", "ce")
    for row in ce:
        row["token_weights"] = np.full(len(row["targets"]), cfg.ce_weight / max(n_ce, 1.0) * on,
                                       np.float32)
    batch = batch_lib.build_batch(ce + rl_rows, batch_rows, encoder_length,
                                  decoder_length)
    stats.update(rl_rows=len(rl_rows), ce_rows=len(ce), rl_tokens=n_rl, ce_tokens=n_ce,
                 sample_returns=returns, baseline_returns=baselines)
    return batch, stats
