"""Online CodeRL: sample -> execute -> critic-weighted update, in one loop.

One learner step (`Learner.collect`, then `Learner.update`), for a batch of P problems:

  1. the greedy baseline program of every problem, then K samples each (top-p), decoded in
     chunks; every program goes to the ONE long-lived `Executor` (hidden tests, stop at the
     first failing test) the moment its chunk is decoded;
  2. while the sandbox runs them: the frozen critic scores every sample (per-token class
     probabilities; q(w_t) is read at the true outcome once the verdict is known) and, when
     the KL term is on, the frozen reference policy scores them too;
  3. verdicts -> returns (`outcomes.RETURNS`, or RLConfig.returns); InternalError samples
     (and problems whose baseline could not be judged, for estimators that need it) are
     dropped and counted, never rewarded;
  4. `build_rl_batch` (a pure host function, shared with the offline mode): RL rows with
     the selected return estimator's token weights (`rl/returns.py`) / N_rl, CE rows (one
     reference solution per problem) with ce_weight / N_ce, KL weights kl_coef / N_rl;
  5. one update of the one train step (`training/step.py`), or, with objective
     "alternate" (the official release's schedule), a CE-only update then an RL-only one.

Overlap: within a step, execution runs while the model decodes the next chunk and while the
critic and reference passes run; the learner only waits for verdicts right before building
the batch. This is on-policy (every sample comes from the current params; no staleness),
up to the sampling distribution: the loss's log p is the temperature-1 policy, while the
paper samples at temperature 0.6 with top-p, a sharpened version of it, so the baseline's
share of the gradient, b * E[grad log p], is not zero in expectation (it flattens the policy
when b > 0); temperature 1 and top-p 1 make the estimate exactly on-policy. On a CPU-only host the sandbox's work competes with the model's for the same cores, which
`benchmarks/rl_step.py` measures with overlap on and off.

Offline mode (`offline_groups` + the same `build_rl_batch`): the official release's setting,
RL from an existing samples file + results file (+ the greedy baseline's files).

Resume: actor, optimizer, rng (the train state) and the problem order (the data position:
problem batches consumed) are checkpointed; a killed run restarted on its workdir continues.
Multi-host: each process samples its share of each problem batch with its own sandbox pool;
the normalisers are global (`batch.global_count`) and the update is one global step.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
import time
from collections.abc import Callable, Sequence
from typing import Any

import gin
import jax
import numpy as np

from coderl_jax import outcomes
from coderl_jax.rl import returns as returns_lib
from coderl_jax.training import batch as batch_lib

OBJECTIVES = ("sum", "alternate")
ROLLOUT_DIR = "rollouts"


@gin.configurable(module="coderl_jax.rl")
@dataclasses.dataclass(frozen=True)
class RLConfig:
    """The RL-specific settings (the trainer's TrainerConfig / OptimizerConfig do the rest).

    problems_per_step P and num_samples K fix the batch: P * K RL rows + P CE rows.
    estimator: a `returns.ESTIMATORS` name or alias ("coderl" = D, the default);
    estimator_options: its keyword options (e.g. {"leave_one_out": True} for "group").
    objective: "sum" (L_ce * ce_weight + L_rl * rl_weight in one update, the paper's text) or
    "alternate" (a CE update, then an RL update: the official release).
    kl_coef: weight of the per-token KL penalty to the reference policy (0 = off).
    chunk_problems: problems decoded per sampling call (programs go to the sandbox per chunk).
    overlap: False waits for every verdict before the critic pass (for measurements).
    returns: the return of each outcome (default None: the paper's `outcomes.RETURNS`), e.g.
    a 0/1 pass reward {"CompileError": 0, "RuntimeError": 0, "FailedTest": 0,
    "PassedTest": 1}; every outcome must be given.
    """

    problems_per_step: int = 8
    num_samples: int = 4
    temperature: float = 0.6
    top_p: float = 0.95
    max_new_tokens: int = 128
    max_source_length: int = 600
    estimator: str = returns_lib.DEFAULT_ESTIMATOR
    estimator_options: dict = dataclasses.field(default_factory=dict)
    objective: str = "sum"
    ce_weight: float = 1.0
    rl_weight: float = 1.0
    kl_coef: float = 0.0
    chunk_problems: int = 4
    overlap: bool = True
    workers: int | None = None
    timeout: float = 4.0
    save_rollouts: bool = False
    returns: dict | None = None

    def __post_init__(self):
        if self.objective not in OBJECTIVES:
            raise ValueError(f"RLConfig.objective must be one of {OBJECTIVES}, "
                             f"got {self.objective!r}")
        returns_lib.get_estimator(self.estimator)  # unknown names fail at start-up
        for name in ("problems_per_step", "num_samples", "max_new_tokens", "chunk_problems"):
            if getattr(self, name) < 1:
                raise ValueError(f"RLConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.kl_coef < 0:
            raise ValueError(f"RLConfig.kl_coef must be >= 0, got {self.kl_coef}")
        if self.returns is not None:
            if set(self.returns) != set(outcomes.OUTCOMES) or not all(
                    isinstance(v, (int, float)) and not isinstance(v, bool)
                    and np.isfinite(v) for v in self.returns.values()):
                raise ValueError(f"RLConfig.returns must give a finite number for each of "
                                 f"{outcomes.OUTCOMES}, got {self.returns!r}")

    @property
    def return_table(self) -> dict[str, float]:
        """Outcome -> return (RLConfig.returns, or the paper's table)."""
        if self.returns is None:
            return outcomes.RETURNS
        return {k: float(v) for k, v in self.returns.items()}

    @property
    def needs_critic(self) -> bool:
        return "token_values" in returns_lib.get_estimator(self.estimator).requires

    @property
    def needs_baseline(self) -> bool:
        return "baseline_returns" in returns_lib.get_estimator(self.estimator).requires

    @property
    def rows(self) -> int:
        return self.problems_per_step * (self.num_samples + 1)


# ------------------------------------------------------------------------------- the batch
@dataclasses.dataclass
class Group:
    """One problem's rollouts: K samples (token ids ending in EOS unless cut at the length
    limit), their outcomes, and the greedy baseline's outcome (None: not judged / unused)."""

    task_id: str
    prompt_ids: list[int]
    reference_ids: list[int] | None
    samples: list[list[int]]
    outcomes: list[str]
    baseline_outcome: str | None


def build_rl_batch(groups: Sequence[Group], token_probs: Sequence[np.ndarray] | None,
                   reference_log_probs: Sequence[np.ndarray] | None, cfg: RLConfig, *,
                   batch_rows: int, encoder_length: int, decoder_length: int,
                   part: str = "both") -> tuple[batch_lib.Batch, dict]:
    """The weighted batch of one step, from rollouts and their verdicts (pure, host-side).

    Args:
      groups: this process's problems.
      token_probs: per sample (every group's samples in order, InternalError ones included),
        the critic's per-token class probabilities [T, 4] (None when the estimator needs no
        critic).
      reference_log_probs: per sample (same order), log p_ref [T] (None when kl_coef == 0).
      part: "both" (the summed objective), "ce" or "rl" (one half of "alternate").
    Returns:
      (numpy Batch [batch_rows, ...], statistics of the kept samples).
    InternalError samples are dropped (counted); with an estimator that needs the baseline,
    a problem whose baseline was not judged contributes its CE row only.
    """
    rows, stats = [], {"dropped_internal": 0, "dropped_no_baseline": 0}
    table = cfg.return_table
    rl_rows: list[dict] = []
    sample_returns, baseline_returns, group_ids, values, masks = [], [], [], [], []
    width = decoder_length
    flat = 0
    for g_index, g in enumerate(groups):
        if g.reference_ids is not None:
            rows.append({"task_id": g.task_id, "inputs": g.prompt_ids,
                         "targets": g.reference_ids, "kind": "ce"})
        base_ok = g.baseline_outcome not in (None, outcomes.INTERNAL_ERROR)
        for ids, outcome in zip(g.samples, g.outcomes):
            index = flat
            flat += 1
            if outcome == outcomes.INTERNAL_ERROR:
                stats["dropped_internal"] += 1
                continue
            if cfg.needs_baseline and not base_ok:
                stats["dropped_no_baseline"] += 1
                continue
            t = len(ids)
            rl_rows.append({"task_id": g.task_id, "inputs": g.prompt_ids, "targets": ids,
                            "kind": "rl", "sample": index, "temperature": cfg.temperature})
            sample_returns.append(table[outcome])
            baseline_returns.append(table[g.baseline_outcome] if base_ok else 0.0)
            group_ids.append(g_index)
            mask = np.zeros(width, np.float32)
            mask[:t] = 1.0
            masks.append(mask)
            q = np.ones(width, np.float32)
            if token_probs is not None:
                q[:t] = token_probs[index][:t, outcomes.outcome_index(outcome)]
            values.append(q)
    n_rl = batch_lib.global_count(sum(len(r["targets"]) for r in rl_rows))
    n_ce = batch_lib.global_count(sum(len(r["targets"]) for r in rows))
    if rl_rows:
        weights = returns_lib.token_weights(
            cfg.estimator, sample_returns=np.asarray(sample_returns, np.float32),
            mask=np.stack(masks), baseline_returns=np.asarray(baseline_returns, np.float32),
            group_ids=np.asarray(group_ids), token_values=np.clip(np.stack(values), 0.0, 1.0),
            **cfg.estimator_options)
        for row, w in zip(rl_rows, weights):
            t = len(row["targets"])
            on = part in ("both", "rl")
            row["token_weights"] = w[:t] * (cfg.rl_weight / max(n_rl, 1.0)) * on
            if cfg.kl_coef and reference_log_probs is not None:
                row["kl_weights"] = np.full(t, cfg.kl_coef / max(n_rl, 1.0) * on, np.float32)
                row["reference_log_probs"] = reference_log_probs[row["sample"]][:t]
    for row in rows:
        on = part in ("both", "ce")
        row["token_weights"] = np.full(len(row["targets"]), cfg.ce_weight / max(n_ce, 1.0) * on,
                                       np.float32)
    all_rows = rows + rl_rows
    batch = batch_lib.build_batch(all_rows, batch_rows, encoder_length, decoder_length)
    stats.update(rl_rows=len(rl_rows), ce_rows=len(rows), rl_tokens=n_rl, ce_tokens=n_ce,
                 sample_returns=sample_returns, baseline_returns=baseline_returns)
    return batch, stats


COUNT_NAMES = ("judged", "return_sum", *(f"n/{o}" for o in outcomes.OUTCOMES), "internal",
               "baselines", "baseline_return_sum", "baseline_passed", "groups",
               "no_signal_groups", "critic_hits", "critic_judged")


def step_counts(groups: Sequence[Group], pooled: np.ndarray | None,
                table: dict[str, float] = outcomes.RETURNS) -> np.ndarray:
    """The sums behind `step_statistics`, as a vector in COUNT_NAMES order: sums over
    processes give the global batch's statistics (`statistics_from_counts`). table: the
    outcome -> return table the run trains with."""
    flat = [o for g in groups for o in g.outcomes]
    judged = [o for o in flat if o != outcomes.INTERNAL_ERROR]
    base = [g.baseline_outcome for g in groups
            if g.baseline_outcome not in (None, outcomes.INTERNAL_ERROR)]
    same = [len({table[o] for o in g.outcomes if o != outcomes.INTERNAL_ERROR}) <= 1
            for g in groups]
    hits = []
    if pooled is not None:  # [every sample, C], InternalError ones included (no truth)
        pred = np.argmax(pooled, axis=-1)
        hits = [pred[i] == outcomes.outcome_index(o) for i, o in enumerate(flat)
                if o != outcomes.INTERNAL_ERROR]
    values = [len(judged), sum(table[o] for o in judged),
              *(sum(o == name for o in judged) for name in outcomes.OUTCOMES),
              len(flat) - len(judged), len(base), sum(table[o] for o in base),
              sum(o == outcomes.PASSED_TEST for o in base), len(groups), sum(same),
              sum(hits), len(hits)]
    return np.asarray(values, np.float64)


def statistics_from_counts(counts: np.ndarray) -> dict[str, float]:
    """Per-step RL metrics from (summed) `step_counts`: returns, outcome shares, pass rate,
    no-signal share (problems whose samples all got one return), critic accuracy (its
    sequence-level prediction vs the sandbox's outcome); NaN where nothing was counted."""
    c = dict(zip(COUNT_NAMES, counts.tolist()))
    ratio = lambda a, b: a / b if b > 0 else float("nan")  # noqa: E731
    out = {"sample_return": ratio(c["return_sum"], c["judged"]),
           "baseline_return": ratio(c["baseline_return_sum"], c["baselines"]),
           "baseline_pass_rate": ratio(c["baseline_passed"], c["baselines"])}
    for name in outcomes.OUTCOMES:
        out[f"outcome/{name}"] = c[f"n/{name}"] / max(c["judged"], 1.0)
    out["internal_errors"] = c["internal"]
    out["sample_pass_rate"] = out[f"outcome/{outcomes.PASSED_TEST}"]
    out["no_signal_share"] = ratio(c["no_signal_groups"], c["groups"])
    if c["critic_judged"] > 0:
        out["critic_accuracy"] = c["critic_hits"] / c["critic_judged"]
    return out


def step_statistics(groups: Sequence[Group], pooled: np.ndarray | None,
                    table: dict[str, float] = outcomes.RETURNS) -> dict[str, float]:
    """Per-step RL metrics of these groups (this process's; see `statistics_from_counts`)."""
    return statistics_from_counts(step_counts(groups, pooled, table))


# ------------------------------------------------------------------------------ sampling
def _pad_prompts(prompt_ids: Sequence[Sequence[int]], pad_id: int, rows: int
                 ) -> tuple[np.ndarray, np.ndarray]:
    width = max(len(p) for p in prompt_ids)
    ids = np.full((rows, width), pad_id, np.int32)
    mask = np.zeros((rows, width), np.int32)
    for i, p in enumerate(prompt_ids):
        ids[i, :len(p)] = p
        mask[i, :len(p)] = 1
    return ids[:len(prompt_ids)], mask[:len(prompt_ids)]


def _programs(out) -> list[list[int]]:
    tokens, lengths = np.asarray(out.tokens), np.asarray(out.lengths)
    return [tokens[i, :lengths[i]].tolist() for i in range(tokens.shape[0])]


class Sampler:
    """Decodes a problem batch's baselines and samples in chunks, handing each chunk's
    programs to `on_programs` as soon as it is decoded (so the sandbox starts on them)."""

    def __init__(self, config, tokenizer, cfg: RLConfig):
        from coderl_jax.decoding import SamplingParams

        self.config, self.tokenizer, self.cfg = config, tokenizer, cfg
        self.greedy = SamplingParams(greedy=True, max_new_tokens=cfg.max_new_tokens)
        self.sampled = SamplingParams(num_samples=cfg.num_samples,
                                      max_new_tokens=cfg.max_new_tokens,
                                      temperature=cfg.temperature, top_p=cfg.top_p)

    def run(self, params, prompt_ids: Sequence[list[int]], rng: jax.Array, *,
            with_baseline: bool,
            on_programs: Callable[[str, int, list[list[int]]], None]) -> tuple[list, list]:
        """-> (baseline ids per problem (or None), K sample ids per problem)."""
        from coderl_jax.decoding import sample

        cfg, n = self.cfg, len(prompt_ids)
        chunk = cfg.chunk_problems
        baselines: list = [None] * n
        samples: list = [None] * n
        for start in range(0, n, chunk):
            idx = list(range(start, min(start + chunk, n)))
            ids, mask = _pad_prompts([prompt_ids[i] for i in idx], self.config.pad_token_id,
                                     len(idx))
            if with_baseline:
                out = sample(self.config, params, ids, mask, rng, self.greedy,
                             pad_batch_to=chunk)
                progs = _programs(out)
                for j, i in enumerate(idx):
                    baselines[i] = progs[j]
                on_programs("baseline", start, progs)
            sample_ids = np.asarray([i * cfg.num_samples + k for i in idx
                                     for k in range(cfg.num_samples)], np.int32)
            out = sample(self.config, params, ids, mask, jax.random.fold_in(rng, 1),
                         self.sampled, sample_ids=sample_ids, pad_batch_to=chunk)
            progs = _programs(out)
            for j, i in enumerate(idx):
                samples[i] = progs[j * cfg.num_samples:(j + 1) * cfg.num_samples]
            on_programs("samples", start, progs)
        return baselines, samples


def local_params(params):
    """`params` as this process's own copy, for work each process does alone (decoding its
    share of the problems). One process: unchanged. Several: a replicated global array
    spans every process's devices, and a jitted call on it would be one SPMD program that
    all processes must enter with the same shapes; its first local shard is the whole
    array on a local device."""
    if jax.process_count() == 1:
        return params

    def local(x):
        if not x.is_fully_replicated:
            raise ValueError("multi-process RL decodes each process's share of the problems "
                             "with a local copy of the actor, which needs replicated params "
                             "(TrainerConfig.mesh_model = 1)")
        return x.addressable_data(0)
    return jax.tree.map(local, params)


def decode_program(tokenizer, ids: Sequence[int]) -> str:
    return tokenizer.decode(list(ids), skip_special_tokens=True)


# ------------------------------------------------------------------------------- learner
@dataclasses.dataclass
class ProblemData:
    """A problem with its encoded prompt and CE reference (None if none fits)."""

    problem: Any
    prompt_ids: list[int]
    reference_ids: list[int] | None


def prepare_problems(problems, tokenizer, max_source_length: int, max_target_length: int
                     ) -> list[ProblemData]:
    from coderl_jax.data.prompts import format_prompt

    out = []
    for p in problems:
        prompt = format_prompt(p, tokenizer, max_source_length)
        prompt_ids = tokenizer(prompt, add_special_tokens=True)["input_ids"]
        reference = None
        for solution in p.solutions:
            ids = tokenizer.encode(solution, add_special_tokens=False) + [tokenizer.eos_token_id]
            if len(ids) <= max_target_length:
                reference = ids
                break
        out.append(ProblemData(p, prompt_ids, reference))
    return out


class Learner:
    """Runs online (or offline) CodeRL steps on a TrainState; see the module docstring.

    Args:
      actor: (config, tokenizer) of the policy (its params live in the train state).
      critic: a frozen `scoring.Scorer` of the 4-class critic (None if the estimator needs
        none); reference: a frozen actor `Scorer` for the KL term (None if kl_coef == 0).
      executor: the one long-lived sandbox `Executor` (online mode).
      step_fn: the jitted train step; batch_sharding: its batch shardings.
    """

    def __init__(self, config, tokenizer, cfg: RLConfig, *, critic=None, reference=None,
                 executor=None, step_fn=None, batch_shardings=None, seed: int = 0,
                 rollout_dir: pathlib.Path | None = None):
        if cfg.needs_critic and critic is None:
            raise ValueError(f"return estimator {cfg.estimator!r} needs a critic")
        if critic is not None and tuple(critic.classes or ()) != outcomes.OUTCOMES:
            raise ValueError(f"RL needs the 4-class critic {outcomes.OUTCOMES}; the given "
                             f"critic has classes {critic.classes}")
        if cfg.kl_coef and reference is None:
            raise ValueError("kl_coef > 0 needs a reference policy")
        self.config, self.tokenizer, self.cfg = config, tokenizer, cfg
        self.critic, self.reference, self.executor = critic, reference, executor
        self.step_fn, self.batch_shardings, self.seed = step_fn, batch_shardings, seed
        self.sampler = Sampler(config, tokenizer, cfg)
        self.rollout_dir = rollout_dir
        self._futures: dict | None = None
        self.encoder_length = cfg.max_source_length
        self.decoder_length = cfg.max_new_tokens

    # -- one online step ------------------------------------------------------------------
    def collect(self, params, batch: Sequence[ProblemData], policy_step: int,
                timings: dict) -> tuple[list[Group], list | None, np.ndarray | None, list | None]:
        """Sample, execute, score: -> (groups, critic token probs, pooled probs, ref logp).

        Interrupted (Ctrl-C, SIGTERM, an error), it cancels the step's programs that the
        sandbox has not started, so closing the executor does not wait for the whole queue.
        """
        futures: dict[str, list] = {"baseline": [None] * len(batch),
                                    "samples": [None] * len(batch)}
        self._futures = futures
        try:
            return self._collect(params, batch, policy_step, timings, futures)
        except BaseException:
            self.cancel_pending()
            raise
        finally:
            self._futures = None

    def cancel_pending(self) -> None:
        """Cancel the sandbox jobs of the step in progress that have not started yet."""
        for per in (self._futures or {}).values():
            for fs in per:
                for f in fs or ():
                    f.cancel()

    def _collect(self, params, batch, policy_step, timings, futures):
        cfg = self.cfg
        rng = jax.random.fold_in(jax.random.key(self.seed), policy_step)
        pending: list = []

        def submit(kind: str, start: int, programs: list[list[int]]) -> None:
            if not cfg.overlap:
                pending.append((kind, start, programs))
                return
            self._submit(batch, futures, kind, start, programs)

        t0 = time.monotonic()
        baselines, samples = self.sampler.run(local_params(params),
                                              [d.prompt_ids for d in batch], rng,
                                              with_baseline=cfg.needs_baseline,
                                              on_programs=submit)
        timings["sampling"] = time.monotonic() - t0
        if not cfg.overlap:  # the sequential reference: execute everything, then score
            for item in pending:
                self._submit(batch, futures, *item)
            t0 = time.monotonic()
            self._wait(futures)
            timings["wait"] = time.monotonic() - t0
        flat_prompts = [d.prompt_ids for d, s in zip(batch, samples) for _ in s]
        flat_samples = [ids for s in samples for ids in s]
        token_probs = pooled = ref_logp = None
        t0 = time.monotonic()
        if self.critic is not None:
            token_probs, pooled = self.critic.critic_outputs(flat_prompts, flat_samples)
        timings["critic"] = time.monotonic() - t0
        t0 = time.monotonic()
        if self.reference is not None:
            ref_logp = self.reference.log_probs(flat_prompts, flat_samples,
                                                temperature=cfg.temperature)
        timings["reference"] = time.monotonic() - t0
        t0 = time.monotonic()
        verdicts = self._wait(futures)
        timings["wait"] = timings.get("wait", 0.0) + time.monotonic() - t0
        groups = []
        for i, d in enumerate(batch):
            base = verdicts["baseline"][i]
            groups.append(Group(
                task_id=d.problem.task_id, prompt_ids=d.prompt_ids,
                reference_ids=d.reference_ids, samples=samples[i],
                outcomes=[v.outcome for v in verdicts["samples"][i]],
                baseline_outcome=None if base is None else base[0].outcome))
        if self.rollout_dir is not None:
            self._save_rollouts(groups, baselines, verdicts, policy_step)
        return groups, token_probs, pooled, ref_logp

    def _submit(self, batch, futures, kind: str, start: int, programs) -> None:
        per = 1 if kind == "baseline" else self.cfg.num_samples
        for j in range(len(programs) // per):
            i = start + j
            if i >= len(batch):
                break
            futures[kind][i] = [
                self.executor.submit(batch[i].problem, decode_program(self.tokenizer, ids),
                                     tests="hidden", stop_at_first_failure=True)
                for ids in programs[j * per:(j + 1) * per]]

    @staticmethod
    def _wait(futures) -> dict:
        return {kind: [None if fs is None else [f.result() for f in fs] for fs in per]
                for kind, per in futures.items()}

    def _save_rollouts(self, groups, baselines, verdicts, policy_step: int) -> None:
        self.rollout_dir.mkdir(parents=True, exist_ok=True)
        name = f"step_{policy_step:06d}.p{jax.process_index()}.jsonl"
        with open(self.rollout_dir / name, "w") as f:
            for i, g in enumerate(groups):
                entries = [(ids, v, False) for ids, v in zip(g.samples, verdicts["samples"][i])]
                if baselines[i] is not None:
                    entries.append((baselines[i], verdicts["baseline"][i][0], True))
                for ids, v, is_base in entries:
                    f.write(json.dumps({
                        "task_id": g.task_id, "code": decode_program(self.tokenizer, ids),
                        "tokens": list(map(int, ids)), "baseline": is_base,
                        "outcome": v.outcome, "error_type": v.error_type,
                        "test_results": list(v.test_results), "reward": v.reward,
                        "detail": v.detail, "policy_step": policy_step}) + "\n")

    def update(self, state, groups, token_probs, ref_logp, timings: dict):
        """Build the weighted batch(es) and apply the update(s): -> (state, train metrics)."""
        parts = ("both",) if self.cfg.objective == "sum" else ("ce", "rl")
        t0 = time.monotonic()
        metrics = {}
        for part in parts:
            local_rows = self.cfg.rows // jax.process_count()
            batch, stats = build_rl_batch(
                groups, token_probs, ref_logp, self.cfg, batch_rows=local_rows,
                encoder_length=self.encoder_length, decoder_length=self.decoder_length,
                part=part)
            # Leaf by leaf: each field with its own sharding, on one process or several.
            state, m = self.step_fn(state, jax.tree.map(batch_lib.to_global, batch,
                                                        self.batch_shardings))
            m = jax.device_get(m)  # blocks: the update time is real
            metrics.update({(k if part == "both" else f"{part}/{k}"): v for k, v in m.items()})
            metrics["dropped_internal"] = stats["dropped_internal"]
            metrics["dropped_no_baseline"] = stats["dropped_no_baseline"]
        timings["update"] = time.monotonic() - t0
        return state, metrics


# ------------------------------------------------------------------------------ offline
def offline_groups(problems: Sequence[ProblemData], samples_path, results_path,
                   baseline_samples_path=None, baseline_results_path=None, *, tokenizer,
                   num_samples: int, max_target_length: int) -> list[Group]:
    """Groups from a samples file + results file (+ the greedy baseline's files): the
    official release's offline RL data. A samples line may carry "tokens" (the exact ids an
    online run sampled, as `save_rollouts` writes them); otherwise the code is tokenized.
    The first `num_samples` judged lines of each problem are used; InternalError lines stay
    in (build_rl_batch drops and counts them)."""
    from coderl_jax.data import jsonl

    by_id = {d.problem.task_id: d for d in problems}

    def read(samples_path, results_path):
        samples = list(jsonl.read_jsonl(samples_path))
        results = jsonl.read_results(results_path)
        if len(samples) != len(results):
            raise jsonl.JsonlError(results_path, min(len(samples), len(results)) + 1,
                                   f"{len(results)} results for {len(samples)} samples in "
                                   f"{samples_path}")
        out: dict[str, list] = {}
        for index, ((line, rec), res) in enumerate(zip(samples, results)):
            task_id = str(rec.get("task_id"))
            if res["sample_index"] != index or str(res["task_id"]) != task_id:
                raise jsonl.JsonlError(results_path, index + 1,
                                       f"does not match line {line} of {samples_path}")
            if task_id not in by_id:
                raise jsonl.JsonlError(samples_path, line,
                                       f"task_id {task_id!r} is not in the problem set")
            ids = rec.get("tokens")
            if ids is None:
                code = jsonl.require(samples_path, line, rec, "code", str)
                ids = tokenizer.encode(code, add_special_tokens=False) + [tokenizer.eos_token_id]
            out.setdefault(task_id, []).append((list(ids)[:max_target_length], res["outcome"]))
        return out

    sampled = read(samples_path, results_path)
    base = read(baseline_samples_path, baseline_results_path) if baseline_samples_path else {}
    groups = []
    for d in problems:  # problem order, as the online mode's pool: same seed, same batches
        task_id = d.problem.task_id
        if task_id not in sampled:
            continue
        entries = sampled[task_id][:num_samples]
        groups.append(Group(task_id, d.prompt_ids, d.reference_ids, [e[0] for e in entries],
                            [e[1] for e in entries],
                            base[task_id][0][1] if task_id in base else None))
    return groups
