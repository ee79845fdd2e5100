"""Critic sampling (CodeRL, Le et al. 2022, Sec. 3.3): refine passing programs, repair failing ones.

At inference the actor draws N programs for a problem and runs them on the problem's
*example* tests (those in the statement, never the hidden ones). P = the programs that pass
them, F = the others. A binary critic {FailedTest, PassedTest} (`coderl_jax.models.critic`)
reads each program and gives, per token t, p(Pass | w_1..t) and p(Fail | w_1..t).

* Refine (P non-empty). Each program of P is cut into a seed prefix and the actor resamples
  continuations of it, about N / |P| per seed:
    - t_max = argmax_t p(Pass | w_1..t): the prefix the critic likes best. The cut keeps
      w_1..w_{t_max} *inclusive*: prefix_len = t_max + 1 (t_max 0-based). On ties the
      earliest maximum wins (a shorter prefix leaves the resampler more room, and np.argmax
      does the same).
    - If a token *before* t_max already has p(Fail) > p(Pass) (strictly), the critic thinks
      the program went wrong there, so the cut moves to the first such token t_f and keeps
      only the tokens *before* it: prefix_len = t_f (0-based), possibly 0, which means
      "resample from scratch" (the seed is the empty prefix).
  `refine_cut` implements exactly this. With the binary critic p(Fail) = 1 - p(Pass), so the
  fail test is p(Pass) < 0.5.
* Repair (P empty). The top-M programs of F by their program-level critic score p(Pass) go
  to the repair model (input: problem + failed program + outcome + error subtype), N / M
  repairs each; if M > |F| all of F is used. The repaired programs are judged on the example
  tests and refined like any others: the driver calls `plan` again on them.

Choices made here (the paper leaves them open):

* Program-level score = max over tokens of p(Pass | w_1..t). The critic was trained on the
  max-pool over tokens of its per-token logits (paper Sec. 3.2), so its sequence-level
  judgement is a max over positions, not the last position (which the pooled loss never
  trains on its own); the max also equals p(Pass) at t_max, so repair ranks programs by the
  same number refine cuts at. A program with no tokens has no evidence and scores -inf
  (ranks last). Callers holding the exact pooled prediction can pass `scores` instead.
* Ranking = score descending, ties broken by the lower program index (deterministic).
* Counts: `split_count(N, k)` splits N as evenly as possible over the k ranked seeds, the
  remainder going to the first (best-ranked) ones, so the counts always sum to exactly N.
  When there are more candidates than samples (|P| > N, or M > N in repair), the first N by
  rank get one sample each and the others get none and are *dropped* from the plan: every
  Seed / RepairSeed in a Plan has count >= 1, and the tuple is in rank order.

Everything above the driver section is pure Python + numpy (no JAX, no model, no sandbox):
`plan(passed, pass_probs, ...) -> Plan` is a function of test results and critic scores only.
"""

from __future__ import annotations

import dataclasses
import operator
from typing import Sequence

import numpy as np

# ---------------------------------------------------------------------------------------------
# Planning (pure)


@dataclasses.dataclass(frozen=True)
class Seed:
    """Resample `count` continuations of program `source`'s first `prefix_len` tokens.

    source: index of the program in the inputs of `plan`; prefix_len: number of the
    program's tokens kept (0 = sample from scratch); count >= 1.
    """

    source: int
    prefix_len: int
    count: int


@dataclasses.dataclass(frozen=True)
class RepairSeed:
    """Ask the repair model for `count` repairs of failed program `source` (count >= 1)."""

    source: int
    count: int


@dataclasses.dataclass(frozen=True)
class Plan:
    """What to sample next for one problem. Both tuples are in rank order (best first).

    Exactly one of `refine` / `repair` is non-empty, unless there were no programs at all
    (then both are empty). The counts of the non-empty one sum to `num_samples`.
    """

    refine: tuple[Seed, ...] = ()
    repair: tuple[RepairSeed, ...] = ()

    @property
    def mode(self) -> str:
        """"refine", "repair" or "none"."""
        return "refine" if self.refine else "repair" if self.repair else "none"

    @property
    def total(self) -> int:
        """Number of programs the plan asks for."""
        return sum(s.count for s in self.refine) + sum(s.count for s in self.repair)


def _probs(name: str, x) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64)
    if a.ndim != 1:
        raise ValueError(f"{name} must be a vector [T], got shape {a.shape}")
    if not np.all(np.isfinite(a)) or np.any((a < 0) | (a > 1)):
        raise ValueError(f"{name} must hold probabilities in [0, 1]")
    return a


def _count(name: str, x, minimum: int) -> int:
    if isinstance(x, (bool, np.bool_)):
        raise ValueError(f"{name} must be an integer, got {x!r}")
    try:
        value = operator.index(x)
    except TypeError:
        raise ValueError(f"{name} must be an integer, got {x!r}") from None
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return value


def refine_cut(pass_probs, fail_probs=None) -> int:
    """The seed prefix length of a passing program (see the module docstring).

    pass_probs [T]: p(Pass | w_1..t) per token; fail_probs [T]: p(Fail | w_1..t), default
    1 - pass_probs (binary critic). Returns prefix_len in [0, T]: t_max + 1 with t_max =
    argmax_t pass_probs (first on ties), or t_f = the first t < t_max with fail > pass.
    A program of length 0 gives 0.
    """
    p = _probs("pass_probs", pass_probs)
    f = 1.0 - p if fail_probs is None else _probs("fail_probs", fail_probs)
    if f.shape != p.shape:
        raise ValueError(f"fail_probs must have shape {p.shape} (pass_probs'), got {f.shape}")
    if p.size == 0:
        return 0
    t_max = int(np.argmax(p))
    worse = np.flatnonzero(f[:t_max] > p[:t_max])
    return int(worse[0]) if worse.size else t_max + 1


def split_count(total: int, parts: int) -> list[int]:
    """`total` split into `parts` counts as even as possible, remainder to the first parts.

    split_count(7, 3) == [3, 2, 2]; split_count(2, 4) == [1, 1, 0, 0]. Sums to `total`.
    """
    total = _count("total", total, 0)
    parts = _count("parts", parts, 1)
    base, extra = divmod(total, parts)
    return [base + 1] * extra + [base] * (parts - extra)


def program_score(pass_probs) -> float:
    """Program-level critic score: max_t p(Pass | w_1..t); -inf for a program of length 0."""
    p = _probs("pass_probs", pass_probs)
    return float(p.max()) if p.size else float("-inf")


def rank(scores: Sequence[float]) -> list[int]:
    """Indices of `scores` best first: score descending, ties by the lower index."""
    return sorted(range(len(scores)), key=lambda i: (-scores[i], i))


def _passed_flags(passed) -> list[bool]:
    a = np.asarray(passed)
    if a.ndim != 1:
        raise ValueError(f"passed must be a sequence of booleans, got shape {a.shape}")
    if a.size and a.dtype != bool:
        if not (np.issubdtype(a.dtype, np.integer) and np.all((a == 0) | (a == 1))):
            raise ValueError(f"passed must hold booleans, got {list(passed)!r}")
    return [bool(x) for x in a]


def plan(passed: Sequence[bool], pass_probs: Sequence, num_samples: int, repair_top_m: int,
         *, fail_probs: Sequence | None = None, scores: Sequence[float] | None = None) -> Plan:
    """Plan critic sampling for one problem's K programs.

    passed [K]: whether program k passed the example tests; pass_probs: K arrays [T_k] of
    p(Pass | w_1..t) (T_k may differ, and may be 0); fail_probs: K arrays [T_k] of
    p(Fail | w_1..t), default 1 - pass_probs (binary critic); scores [K]: program-level
    scores, default `program_score(pass_probs[k])`; num_samples (N) >= 1; repair_top_m
    (M) >= 1.

    If any program passed: refine seeds (`refine_cut`) of the passing programs in rank
    order, counts `split_count(N, |P|)`. Otherwise: repair seeds of the top-min(M, K) failed
    programs by score, counts `split_count(N, min(M, K))`. Zero-count entries are dropped.
    K == 0 gives an empty Plan.
    """
    flags = _passed_flags(passed)
    k = len(flags)
    num_samples = _count("num_samples", num_samples, 1)
    repair_top_m = _count("repair_top_m", repair_top_m, 1)
    if len(pass_probs) != k:
        raise ValueError(f"pass_probs must hold one array per program ({k}), "
                         f"got {len(pass_probs)}")
    if fail_probs is not None and len(fail_probs) != k:
        raise ValueError(f"fail_probs must hold one array per program ({k}), "
                         f"got {len(fail_probs)}")
    if scores is None:
        scores = [program_score(p) for p in pass_probs]
    else:
        scores = [float(s) for s in scores]
        if len(scores) != k:
            raise ValueError(f"scores must hold one value per program ({k}), got {len(scores)}")
        if any(np.isnan(s) for s in scores):
            raise ValueError("scores must not be NaN")
    # Validate every program's arrays up front, also those the chosen branch does not cut.
    cuts = [refine_cut(pass_probs[i], None if fail_probs is None else fail_probs[i])
            for i in range(k)]

    ranked = rank(scores)
    passing = [i for i in ranked if flags[i]]
    if passing:
        counts = split_count(num_samples, len(passing))
        return Plan(refine=tuple(Seed(i, cuts[i], c) for i, c in zip(passing, counts) if c))
    if not ranked:
        return Plan()
    chosen = ranked[:repair_top_m]
    counts = split_count(num_samples, len(chosen))
    return Plan(repair=tuple(RepairSeed(i, c) for i, c in zip(chosen, counts) if c))


# ---------------------------------------------------------------------------------------------
# Driver (sampling from seeds, repair, judging and re-planning): added separately; it must
# keep the planning above pure and call `plan` on the repaired programs to refine them.
#
# `critic_sample` runs the whole of Sec. 3.3 for a list of problems, batching the model work
# of all problems together and overlapping it with the sandbox:
#
#   1. N initial programs per problem: sampled from the actor (`generation.generate_samples`)
#      or given by the caller (`initial`).
#   2. All of them are submitted to the Executor on the EXAMPLE tests at once; while the
#      sandbox runs them, 3. the binary critic scores them (p(Pass | w_1..t) per token).
#   Then `plan` per problem. Problems whose plan is "repair" (and a repair model is given):
#   5. the plan's RepairSeeds become repair prompts (`data.repair.repair_prompt`, with each
#      failed program's example-test outcome and error subtype), the repair model samples
#      `count` programs each; these are submitted to the sandbox and scored by the critic,
#      and while the sandbox runs them, 4. the actor refines the problems whose first plan
#      was "refine". Then `plan` again on the repaired programs: those with a passing
#      repaired program are refined too ("repair+refine"); the others keep the repaired
#      programs ("repair").
#   6. Problems without example tests keep their initial programs (nothing to filter by),
#      as do problems with no passing program and no repair model; both are flagged.
#
# Token ids. A program is seen by the critic, and cut for refinement, as its *canonical*
# tokenization `tokenizer.encode(code, add_special_tokens=False) + [eos]` (the framing the
# critic was trained on), not as the ids the actor happened to sample (BPE can sample a
# non-canonical split of the same text); a seed prefix is the first prefix_len of those ids,
# teacher-forced into the actor (`decoding.sample(prefix_ids, prefix_len)`). The actor's
# tokenizer serves the critic too (CodeRL's critic is a CodeT5 with the actor's vocabulary).
# A prefix longer than the sampling budget is clipped to max_new_tokens (the prefix counts
# towards it); `CriticSamplingResult.prefix_lens` reports the tokens actually forced.
#
# Randomness. Initial samples are `generate_samples(seed=seed)`'s. Repair and refine draw
# from their own streams of the same seed (REPAIR_STREAM, REFINE_STREAM), row j (0..N-1) of
# problem i with sample id i * N + j, so every program depends only on (models, problem,
# seed, i, j): not on the batch size, on which other problems were in the run, or on the
# order the sandbox answered in.

# Modes of a result (`CriticSamplingResult.mode`).
MODES: tuple[str, ...] = ("refine", "repair", "repair+refine", "none")
# Why a problem kept its initial programs (`CriticSamplingResult.kept`).
KEPT_NO_EXAMPLE_TESTS = "no_example_tests"
KEPT_NO_REPAIR_MODEL = "no_repair_model"
# fold_in tags of the repair and refine sampling streams (far above any initial sample id).
REPAIR_STREAM = 0x5E1A_0001
REFINE_STREAM = 0x5E1A_0002


@dataclasses.dataclass(frozen=True)
class CriticSamplingResult:
    """Critic sampling's outcome for one problem.

    task_id: the problem's id.
    programs [N]: the final programs, in the order of the deciding plan (`repair_plan` for
      "repair+refine", else `plan`): each seed's `count` programs consecutively. These are
      what the caller judges on the hidden tests.
    mode: "refine" (some initial program passed the example tests), "repair" (none did; the
      final programs are the repair model's, none of which passed either), "repair+refine"
      (a repaired program passed and was refined) or "none" (initial programs kept).
    kept: why mode is "none": KEPT_NO_EXAMPLE_TESTS or KEPT_NO_REPAIR_MODEL; else None.
    num_passed: |P|, the initial programs that passed the example tests.
    plan: `plan` on the initial programs (Plan() when they were not judged).
    initial [N]: the initial programs; initial_outcomes [N]: their example-test outcomes
      (() when not judged).
    repaired [N], repaired_outcomes [N]: the repair model's programs and their example-test
      outcomes, in `plan.repair` order (() when repair did not run); repair_plan: `plan` on
      them (None when repair did not run).
    prefix_lens [N]: for refined programs, the number of seed tokens forced into the actor
      for each final program (the seed's prefix_len, clipped to max_new_tokens); () when
      the final programs were not refined.
    """

    task_id: str
    programs: tuple[str, ...]
    mode: str
    kept: str | None
    num_passed: int
    plan: Plan
    initial: tuple[str, ...]
    initial_outcomes: tuple[str, ...] = ()
    repaired: tuple[str, ...] = ()
    repaired_outcomes: tuple[str, ...] = ()
    repair_plan: Plan | None = None
    prefix_lens: tuple[int, ...] = ()

    @property
    def num_repaired_passed(self) -> int:
        """Repaired programs that passed the example tests."""
        from coderl_jax import outcomes

        return sum(o == outcomes.PASSED_TEST for o in self.repaired_outcomes)


def summarize(results: Sequence[CriticSamplingResult]) -> dict[str, int]:
    """Counts for a report: problems, each mode, each `kept` reason, problems with P empty."""
    counts = {"problems": len(results), **{m: 0 for m in MODES},
              KEPT_NO_EXAMPLE_TESTS: 0, KEPT_NO_REPAIR_MODEL: 0, "no_initial_pass": 0}
    for r in results:
        counts[r.mode] += 1
        if r.kept:
            counts[r.kept] += 1
        if r.initial_outcomes and r.num_passed == 0:
            counts["no_initial_pass"] += 1
    return counts


def seed_rows(seeds: Sequence[Seed] | Sequence[RepairSeed]) -> list[int]:
    """Per output row (N in all), the index in `seeds` it comes from: each seed's `count`
    rows consecutively: seed_rows((Seed(3, 1, 2), Seed(0, 4, 1))) == [0, 0, 1]."""
    return [k for k, s in enumerate(seeds) for _ in range(s.count)]


@dataclasses.dataclass
class _Candidates:
    """One problem's programs at one stage, with what the driver learns about them."""

    texts: list[str]
    ids: list[list[int]]  # canonical ids + EOS (module comment)
    futures: list = dataclasses.field(default_factory=list)
    verdicts: list = dataclasses.field(default_factory=list)
    pass_probs: list = dataclasses.field(default_factory=list)
    plan: Plan = Plan()

    @property
    def outcomes(self) -> tuple[str, ...]:
        return tuple(v.outcome for v in self.verdicts)

    @property
    def passed(self) -> list[bool]:
        return [v.passed for v in self.verdicts]


def _program_ids(tokenizer, text: str, eos: int) -> list[int]:
    return list(tokenizer.encode(text, add_special_tokens=False)) + [eos]


def _runnable(problem, text: str) -> str:
    """The program the sandbox runs: a completion continues its prompt (HumanEval)."""
    from coderl_jax.generation import COMPLETION_SOURCES

    return problem.question + text if problem.source in COMPLETION_SOURCES else text


def _sample_rows(config, params, tokenizer, input_ids: Sequence[Sequence[int]],
                 prefixes: Sequence[Sequence[int]], sample_ids: Sequence[int], sampling,
                 rng, rows_per_call: int) -> list[str]:
    """One sample per row: row r continues prefixes[r] given the encoder input input_ids[r].

    input_ids: R framed prompts (lengths vary); prefixes: R decoder prefixes (each at most
    sampling.max_new_tokens, may be empty); sample_ids [R] seed each row's randomness.
    Rows go to `decoding.sample` in calls of `rows_per_call` rows (padded to it), sorted by
    prompt length so a call pads little; the prefix width is always max_new_tokens, so
    prefixes of any length share one compile. Returns R decoded programs, in row order.
    """
    from coderl_jax.decoding import sample

    one = dataclasses.replace(sampling, num_samples=1)
    width = sampling.max_new_tokens
    order = sorted(range(len(input_ids)), key=lambda r: len(input_ids[r]))
    texts: list[str] = [""] * len(input_ids)
    for start in range(0, len(order), rows_per_call):
        rows = order[start:start + rows_per_call]
        src = max(len(input_ids[r]) for r in rows)
        ids = np.full((len(rows), src), config.pad_token_id, np.int32)
        mask = np.zeros((len(rows), src), np.int32)
        prefix_ids = np.full((len(rows), width), config.pad_token_id, np.int32)
        prefix_len = np.zeros((len(rows),), np.int32)
        for j, r in enumerate(rows):
            ids[j, :len(input_ids[r])] = input_ids[r]
            mask[j, :len(input_ids[r])] = 1
            prefix_ids[j, :len(prefixes[r])] = prefixes[r]
            prefix_len[j] = len(prefixes[r])
        out = sample(config, params, ids, mask, rng, one, prefix_ids=prefix_ids,
                     prefix_len=prefix_len, sample_ids=[sample_ids[r] for r in rows],
                     pad_batch_to=rows_per_call)
        tokens, lengths = np.asarray(out.tokens), np.asarray(out.lengths)
        for j, r in enumerate(rows):
            texts[r] = tokenizer.decode(tokens[j, :lengths[j]].tolist(),
                                        skip_special_tokens=True)
    return texts


def _submit(problem, cand: _Candidates, executor) -> None:
    """Queue every program of `cand` on `problem`'s example tests (returns at once)."""
    cand.futures = [executor.submit(problem, _runnable(problem, t), tests="example")
                    for t in cand.texts]


def _score_and_plan(prompt_ids, stage: dict[int, _Candidates], critic, pass_index: int,
                    num_samples: int, repair_top_m: int, overlap=None) -> None:
    """Score every program of `stage` (problem index -> candidates, already submitted to the
    sandbox) with the critic while the sandbox runs, run `overlap()` (more model work) if
    given, then collect the verdicts and plan each problem. Fills the candidates."""
    from coderl_jax import outcomes

    keys = [(i, k) for i, cand in stage.items() for k in range(len(cand.texts))]
    if keys:
        probs = critic.critic_probs([prompt_ids[i] for i, _ in keys],
                                    [stage[i].ids[k] for i, k in keys])
        for (i, _), p in zip(keys, probs):
            stage[i].pass_probs.append(np.asarray(p, np.float64)[:, pass_index])
    if overlap is not None:
        overlap()
    internal = 0
    for cand in stage.values():
        cand.verdicts = [f.result() for f in cand.futures]
        internal += sum(v.outcome == outcomes.INTERNAL_ERROR for v in cand.verdicts)
        cand.plan = plan(cand.passed, cand.pass_probs, num_samples, repair_top_m)
    if internal:
        import logging

        logging.getLogger(__name__).warning(
            "critic sampling: the sandbox could not judge %d programs on their example tests "
            "(InternalError, counted as failed)", internal)


def critic_sample(
    problems: Sequence,
    actor: tuple,
    critic,
    executor,
    sampling,
    *,
    repair: tuple | None = None,
    repair_top_m: int = 1,
    max_source_length: int = 600,
    seed: int = 0,
    batch_size: int = 8,
    initial: Sequence[Sequence[str]] | None = None,
) -> list[CriticSamplingResult]:
    """Critic sampling (paper Sec. 3.3) for every problem: refine, or repair then refine.

    Args:
      problems: B `data.problem.Problem`s.
      actor: (config, params, tokenizer) of the actor (`generation.load_model`).
      critic: a `scoring.Scorer` whose classes include "PassedTest" (the binary critic;
        p(Fail) is taken as 1 - p(Pass)); it reads the actor's token ids.
      executor: a `sandbox.Executor` (the caller's; not closed here), run on example tests.
      sampling: `decoding.SamplingParams` of every actor and repair decode; num_samples is N,
        the number of programs per problem; not greedy (resampling needs randomness).
      repair: (config, params) or (config, params, tokenizer) of the repair model (tokenizer
        default: the actor's), or None: then a problem with no passing program keeps its
        initial programs (mode "none", kept KEPT_NO_REPAIR_MODEL).
      repair_top_m: M, failed programs sent to the repair model per problem.
      max_source_length: encoder tokens of actor, critic and repair prompts
        (`prompts.format_prompt` / `repair.repair_prompt` shorten the statement to fit).
      seed: PRNG seed (module comment, "Randomness").
      batch_size: prompts per initial decode call; refine and repair decode
        batch_size * N rows per call (the same number of decoder rows).
      initial: optional B lists of N programs to start from instead of sampling the actor.

    Returns:
      B `CriticSamplingResult`s, in problem order, each with exactly N final programs.
    """
    import jax

    from coderl_jax import outcomes
    from coderl_jax.data.prompts import format_prompt
    from coderl_jax.data.repair import repair_prompt
    from coderl_jax.generation import generate_samples

    config, params, tokenizer = actor
    n = sampling.num_samples
    if sampling.greedy:
        raise ValueError("critic sampling resamples programs; greedy decoding would repeat "
                         "one program (use temperature sampling)")
    _count("repair_top_m", repair_top_m, 1)
    _count("batch_size", batch_size, 1)
    classes = tuple(critic.classes or ())
    if outcomes.PASSED_TEST not in classes:
        raise ValueError(f"the critic must have a {outcomes.PASSED_TEST!r} class (a binary "
                         f"critic), got classes {classes or None}")
    pass_index = classes.index(outcomes.PASSED_TEST)
    if len(tokenizer) > critic.config.vocab_size:
        raise ValueError(f"the critic reads the actor's token ids, but its vocabulary "
                         f"({critic.config.vocab_size}) is smaller than the actor "
                         f"tokenizer's ({len(tokenizer)})")
    if repair is not None:
        if len(repair) not in (2, 3):
            raise ValueError("repair must be (config, params) or (config, params, tokenizer)")
        r_config, r_params = repair[0], repair[1]
        r_tokenizer = repair[2] if len(repair) == 3 else tokenizer

    prompt_texts = [format_prompt(p, tokenizer, max_source_length) for p in problems]
    prompt_ids = [tokenizer(t)["input_ids"][:max_source_length] for t in prompt_texts]
    eos = config.eos_token_id
    key = jax.random.key(seed)
    rows_per_call = batch_size * n
    width = sampling.max_new_tokens

    def candidates(texts) -> _Candidates:
        return _Candidates(list(texts), [_program_ids(tokenizer, t, eos) for t in texts])

    # 1-2: the initial programs, each problem's submitted to the sandbox (example tests) as
    # soon as they exist, so it judges one decode batch while the actor samples the next.
    first: dict[int, _Candidates] = {}

    def submit_initial(indices, batch_programs) -> None:
        for i, programs in zip(indices, batch_programs):
            if problems[i].example_tests:
                first[i] = candidates(programs)
                _submit(problems[i], first[i], executor)

    if initial is None:
        initial = generate_samples(config, params, tokenizer, prompt_texts, sampling,
                                   seed=seed, batch_size=batch_size,
                                   max_source_length=max_source_length,
                                   on_batch=submit_initial)
    else:
        if len(initial) != len(problems):
            raise ValueError(f"initial must hold one list per problem ({len(problems)}), "
                             f"got {len(initial)}")
        for p, programs in zip(problems, initial):
            if len(programs) != n or not all(isinstance(t, str) for t in programs):
                raise ValueError(f"problem {p.task_id!r}: initial must hold N = {n} program "
                                 f"strings, got {len(programs)}")
        submit_initial(range(len(problems)), initial)
    # 3: the critic scores them while the sandbox runs; then plan.
    _score_and_plan(prompt_ids, first, critic, pass_index, n, repair_top_m)

    refined: dict[int, tuple[list[str], list[int]]] = {}

    def refine(stage: dict[int, _Candidates]) -> None:
        """4: the actor continues each seed's prefix `count` times (all problems batched)."""
        rows_ids, rows_prefix, rows_sid, owner = [], [], [], []
        for i, cand in stage.items():
            for j, k in enumerate(seed_rows(cand.plan.refine)):
                s = cand.plan.refine[k]
                rows_ids.append(prompt_ids[i])
                rows_prefix.append(cand.ids[s.source][:min(s.prefix_len, width)])
                rows_sid.append(i * n + j)
                owner.append(i)
        if not rows_ids:
            return
        texts = _sample_rows(config, params, tokenizer, rows_ids, rows_prefix, rows_sid,
                             sampling, jax.random.fold_in(key, REFINE_STREAM), rows_per_call)
        for i in stage:
            refined[i] = ([], [])
        for i, text, prefix in zip(owner, texts, rows_prefix):
            refined[i][0].append(text)
            refined[i][1].append(len(prefix))

    to_refine = {i: c for i, c in first.items() if c.plan.mode == "refine"}
    to_repair = {i: c for i, c in first.items() if c.plan.mode == "repair"}
    second: dict[int, _Candidates] = {}
    if repair is not None and to_repair:
        # 5: repair prompts of the top-M failed programs; `count` repairs each.
        rows_ids, rows_sid, owner = [], [], []
        for i, cand in to_repair.items():
            for j, k in enumerate(seed_rows(cand.plan.repair)):
                s, verdict = cand.plan.repair[k], cand.verdicts[cand.plan.repair[k].source]
                text = repair_prompt(problems[i], cand.texts[s.source], verdict.outcome,
                                     verdict.error_type, r_tokenizer, max_source_length)
                rows_ids.append(r_tokenizer(text)["input_ids"][:max_source_length])
                rows_sid.append(i * n + j)
                owner.append(i)
        texts = _sample_rows(r_config, r_params, r_tokenizer, rows_ids, [[]] * len(rows_ids),
                             rows_sid, sampling, jax.random.fold_in(key, REPAIR_STREAM),
                             rows_per_call)
        repaired_texts: dict[int, list[str]] = {i: [] for i in to_repair}
        for i, text in zip(owner, texts):
            repaired_texts[i].append(text)
        second = {i: candidates(t) for i, t in repaired_texts.items()}
        for i, cand in second.items():
            _submit(problems[i], cand, executor)
        # The actor refines the first-round problems while the sandbox judges the repairs.
        _score_and_plan(prompt_ids, second, critic, pass_index, n, repair_top_m,
                        overlap=lambda: refine(to_refine))
        refine({i: c for i, c in second.items() if c.plan.mode == "refine"})
    else:
        refine(to_refine)

    results = []
    for i, problem in enumerate(problems):
        common = dict(task_id=problem.task_id, initial=tuple(initial[i]))
        if i not in first:
            results.append(CriticSamplingResult(
                programs=tuple(initial[i]), mode="none", kept=KEPT_NO_EXAMPLE_TESTS,
                num_passed=0, plan=Plan(), **common))
            continue
        cand = first[i]
        common.update(num_passed=sum(cand.passed), plan=cand.plan,
                      initial_outcomes=cand.outcomes)
        if i in second:
            rep = second[i]
            common.update(repaired=tuple(rep.texts), repaired_outcomes=rep.outcomes,
                          repair_plan=rep.plan)
        if i in refined:
            texts, prefix_lens = refined[i]
            mode = "repair+refine" if i in second else "refine"
            results.append(CriticSamplingResult(
                programs=tuple(texts), mode=mode, kept=None, prefix_lens=tuple(prefix_lens),
                **common))
        elif i in second:
            results.append(CriticSamplingResult(
                programs=tuple(second[i].texts), mode="repair", kept=None, **common))
        else:
            results.append(CriticSamplingResult(
                programs=tuple(initial[i]), mode="none", kept=KEPT_NO_REPAIR_MODEL, **common))
    return results


def critic_sample_file(model: str, dataset: str, data, out_path, sampling, *, critic: str,
                       repair_model: str | None = None, repair_top_m: int = 1,
                       example_tests=None, workers: int | None = None, timeout: float = 4.0,
                       max_source_length: int = 600, seed: int = 0, batch_size: int = 8,
                       trace_path=None) -> int:
    """`coderl generate --critic-sampling`: critic sampling for a benchmark's problems,
    writing the final N programs per problem as a samples file (judge it with
    `coderl execute`). The per-problem path (refine / repair / kept, |P|, seeds) goes to
    `trace_path` (default: OUT + ".critic_sampling.json"). Returns the lines written."""
    import json
    import os
    import pathlib

    from coderl_jax.data import jsonl, loaders
    from coderl_jax.generation import load_model, sample_record
    from coderl_jax.sandbox import Executor
    from coderl_jax.scoring import Scorer

    kwargs = {"example_tests": example_tests} if example_tests else {}
    problems = loaders.load_problems(dataset, data, **kwargs)
    actor = load_model(model)
    scorer = Scorer.load(critic)
    if scorer.classes is None or "PassedTest" not in scorer.classes:
        raise ValueError(f"--critic {critic} is not a critic model dir (no critic.json with a "
                         "PassedTest class); train one with `coderl train-critic --binary`")
    repair = None
    if repair_model:
        config, params, tok = load_model(repair_model)
        repair = (config, params, tok)
    hide = [os.path.dirname(os.path.abspath(data))] if data and os.path.exists(data) else []
    with Executor(workers, timeout=timeout, hide_paths=hide) as executor:
        results = critic_sample(problems, actor, scorer, executor, sampling, repair=repair,
                                repair_top_m=repair_top_m, max_source_length=max_source_length,
                                seed=seed, batch_size=batch_size)
    out_path = pathlib.Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    written = jsonl.write_jsonl(out_path, (sample_record(p, code)
                                           for p, r in zip(problems, results)
                                           for code in r.programs))
    trace = pathlib.Path(trace_path or f"{out_path}.critic_sampling.json")
    trace.write_text(json.dumps({
        "summary": summarize(results),
        "problems": [{"task_id": r.task_id, "mode": r.mode, "kept": r.kept,
                      "num_passed": r.num_passed,
                      "refine": [dataclasses.asdict(s) for s in
                                 (r.repair_plan or r.plan).refine],
                      "repair": [dataclasses.asdict(s) for s in r.plan.repair]}
                     for r in results]}, indent=1) + "\n")
    return written
