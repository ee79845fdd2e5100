"""Rollouts: sample K programs + the greedy baseline per problem, judge, score, reward.

`Rollout.collect(params, problems, policy_step)` for a batch of P problems:

  1. the greedy baseline program of every problem (when the estimator needs it), then K
     samples each (top-p at RLConfig.temperature), decoded in chunks (`Sampler`, on
     `decoding.decode_ids`); every program goes to the ONE long-lived `Executor` (hidden
     tests, stop at the first failure unless the reward reads every test) the moment its
     chunk is decoded;
  2. while the sandbox runs them: the frozen critic scores every sample (per-token class
     probabilities; q(w_t) is read at the true outcome once the verdict is known) and, when
     the KL term is on, the frozen reference policy scores them too (`score_samples`);
  3. verdicts -> rewards (`RLConfig.reward_fn`, `rl/rewards.py`); InternalError samples
     are not rewarded (the batch builder drops and counts them).

-> `Judged`: groups of judged samples (`rl.batch.Group`) + the critic's and reference's
outputs, which `rl/batch.py` turns into the weighted batch.

Overlap: execution runs while the model decodes the next chunk and while the critic and
reference passes run; the rollout only waits for verdicts right before rewarding. On-policy
up to the sampling distribution: the train step scores every RL row at its sampling
temperature (`step.ActorModel.log_probs`), so the gradient is that of the tempered policy
that drew the samples; top-p truncation is not modelled (it only removes tokens that were
not sampled). On a CPU-only host the sandbox's work competes with the model's for the same
cores, which `benchmarks/rl_step.py` measures with overlap on and off.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
import time
from collections.abc import Callable, Sequence
from typing import Any

import jax
import numpy as np

from coderl_jax import outcomes
from coderl_jax.rl.batch import Group

ROLLOUT_DIR = "rollouts"


@dataclasses.dataclass
class Judged:
    """A batch of judged rollouts: groups (this process's problems, with rewards), the
    critic's per-token class probabilities per sample [T, C] and sequence-level prediction
    [N, C] (None without a critic), the reference's log p per sample [T] (None without KL)."""

    groups: list[Group]
    token_probs: list | None = None
    pooled: np.ndarray | None = None
    reference_log_probs: list | None = None


def score_samples(critic, reference, flat_prompts: Sequence[list[int]],
                  flat_samples: Sequence[list[int]], temperature: float, timings: dict
                  ) -> tuple[list | None, np.ndarray | None, list | None]:
    """The frozen models' outputs for each (prompt, sample) pair: (critic token
    probabilities, critic pooled prediction, reference log p at `temperature`); None for a
    model that is not there. critic, reference: `scoring.Scorer`s."""
    token_probs = pooled = ref_logp = None
    t0 = time.monotonic()
    if critic is not None:
        token_probs, pooled = critic.critic_outputs(flat_prompts, flat_samples)
    timings["critic"] = time.monotonic() - t0
    t0 = time.monotonic()
    if reference is not None:
        ref_logp = reference.log_probs(flat_prompts, flat_samples, temperature=temperature)
    timings["reference"] = time.monotonic() - t0
    return token_probs, pooled, ref_logp


@dataclasses.dataclass
class ProblemData:
    """A problem with its encoded prompt, CE reference (the first that fits; None if none
    fits) and every reference that fits (RLConfig.ce_per_sample draws from them)."""

    problem: Any
    prompt_ids: list[int]
    reference_ids: list[int] | None
    references: list = dataclasses.field(default_factory=list)


def prepare_problems(problems, tokenizer, max_source_length: int, max_target_length: int
                     ) -> list[ProblemData]:
    from coderl_jax.data.prompts import format_prompt

    out = []
    for p in problems:
        prompt = format_prompt(p, tokenizer, max_source_length)
        prompt_ids = tokenizer(prompt, add_special_tokens=True)["input_ids"]
        references = []
        for solution in p.solutions:
            ids = tokenizer.encode(solution, add_special_tokens=False) + [tokenizer.eos_token_id]
            if len(ids) <= max_target_length:
                references.append(ids)
        out.append(ProblemData(p, prompt_ids, references[0] if references else None,
                               references))
    return out


class Sampler:
    """Decodes a problem batch's baselines and samples in chunks, handing each chunk's
    programs to `on_programs` as soon as it is decoded (so the sandbox starts on them)."""

    def __init__(self, config, tokenizer, cfg):
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
        from coderl_jax.decoding import decode_ids

        cfg, n = self.cfg, len(prompt_ids)
        chunk = cfg.chunk_problems
        baselines: list = [None] * n
        samples: list = [None] * n
        for start in range(0, n, chunk):
            idx = list(range(start, min(start + chunk, n)))
            prompts = [prompt_ids[i] for i in idx]
            if with_baseline:
                rows = decode_ids(self.config, params, prompts, rng, self.greedy, chunk=chunk)
                for j, i in enumerate(idx):
                    baselines[i] = rows[j][0]
                on_programs("baseline", start, [r[0] for r in rows])
            sample_ids = [i * cfg.num_samples + k for i in idx for k in range(cfg.num_samples)]
            rows = decode_ids(self.config, params, prompts, jax.random.fold_in(rng, 1),
                              self.sampled, sample_ids=sample_ids, chunk=chunk)
            for j, i in enumerate(idx):
                samples[i] = rows[j]
            on_programs("samples", start, [p for r in rows for p in r])
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




class Rollout:
    """Collects judged rollouts with the current params (see the module docstring).

    Args:
      config, tokenizer: the policy's (its params come with each `collect`).
      cfg: the `RLConfig`; executor: the one long-lived sandbox `Executor`.
      critic: a frozen 4-class critic `scoring.Scorer` (None if the estimator needs none);
      reference: a frozen actor `Scorer` for the KL term (None if kl_coef == 0).
      rollout_dir: where to write every step's programs and verdicts (None: nowhere).
    """

    def __init__(self, config, tokenizer, cfg, executor, *, critic=None, reference=None,
                 seed: int = 0, rollout_dir: pathlib.Path | None = None):
        self.config, self.tokenizer, self.cfg, self.executor = config, tokenizer, cfg, executor
        self.critic, self.reference, self.seed = critic, reference, seed
        self.reward_fn = cfg.reward_fn
        self.sampler = Sampler(config, tokenizer, cfg)
        self.rollout_dir = rollout_dir
        self._futures: dict | None = None

    def collect(self, params, batch: Sequence[ProblemData], policy_step: int,
                timings: dict) -> Judged:
        """Sample, execute, score, reward this process's problems with `params`.

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

    def _collect(self, params, batch, policy_step, timings, futures) -> Judged:
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
        token_probs, pooled, ref_logp = score_samples(
            self.critic, self.reference, [d.prompt_ids for d, s in zip(batch, samples) for _ in s],
            [ids for s in samples for ids in s], cfg.temperature, timings)
        t0 = time.monotonic()
        verdicts = self._wait(futures)
        timings["wait"] = timings.get("wait", 0.0) + time.monotonic() - t0
        groups = [self._group(d, samples[i], verdicts["samples"][i], verdicts["baseline"][i])
                  for i, d in enumerate(batch)]
        if self.rollout_dir is not None:
            self._save_rollouts(groups, baselines, verdicts, policy_step)
        return Judged(groups, token_probs, pooled, ref_logp)

    def _group(self, d: ProblemData, samples, verdicts, baseline) -> Group:
        """The problem's samples with their verdicts' outcomes and rewards."""
        base = None if baseline is None else baseline[0]
        return Group(task_id=d.problem.task_id, prompt_ids=d.prompt_ids,
                     reference_ids=d.reference_ids, references=d.references,
                     samples=samples,
                     outcomes=[v.outcome for v in verdicts],
                     baseline_outcome=None if base is None else base.outcome,
                     rewards=[self._reward(d.problem, v) for v in verdicts],
                     baseline_reward=None if base is None else self._reward(d.problem, base))

    def _reward(self, problem, verdict) -> float:
        if verdict.outcome == outcomes.INTERNAL_ERROR:
            return float("nan")  # never rewarded: the batch drops and counts it
        return float(self.reward_fn(problem, verdict))

    def _submit(self, batch, futures, kind: str, start: int, programs) -> None:
        per = 1 if kind == "baseline" else self.cfg.num_samples
        for j in range(len(programs) // per):
            i = start + j
            if i >= len(batch):
                break
            futures[kind][i] = [
                self.executor.submit(batch[i].problem, decode_program(self.tokenizer, ids),
                                     tests="hidden",
                                     stop_at_first_failure=outcomes.stops_at_first_failure(
                                         self.cfg.policy))
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
