"""Critic sampling's driver: sample, judge on the example tests, score, plan, refine / repair.

`critic_sample` runs the whole of Sec. 3.3 for a list of problems, batching the model work
of all problems together and overlapping it with the sandbox. Its rounds, each a function
over the per-problem states (`_ProblemState`):

  `_sample_initial`   N programs per problem from the actor (`generation.generate_samples`)
                      or the caller (`initial`), each decode batch submitted to the Executor
                      on the EXAMPLE tests as soon as it exists;
  `_score_and_plan`   the binary critic scores them (p(Pass | w_1..t) per token) while the
                      sandbox runs them; then the verdicts and `planning.plan` per problem;
  `_repair`           problems whose plan is "repair" (and a repair model is given): the
                      plan's RepairSeeds become repair prompts (`data.repair.repair_prompt`,
                      with each failed program's example-test outcome and error subtype), the
                      repair model samples `count` programs each, submitted to the sandbox;
                      `_score_and_plan` again on them, and while the sandbox runs them
  `_refine`           the actor continues each refine seed's prefix `count` times, first for
                      the problems whose first plan was "refine", then for those with a
                      passing repaired program ("repair+refine"); the others keep the
                      repaired programs ("repair");
  `_result`           one `CriticSamplingResult` per problem. Problems without example tests
                      keep their initial programs (nothing to filter by), as do problems with
                      no passing program and no repair model; both are flagged.

Token ids. A program is seen by the critic, and cut for refinement, as its *canonical*
tokenization `tokenizer.encode(code, add_special_tokens=False) + [eos]` (the framing the
critic was trained on), not as the ids the actor happened to sample (BPE can sample a
non-canonical split of the same text); a seed prefix is the first prefix_len of those ids,
teacher-forced into the actor (`decoding.decode_texts(prefixes=...)`). The actor's tokenizer
serves the critic too (CodeRL's critic is a CodeT5 with the actor's vocabulary). A prefix
longer than the sampling budget is clipped to max_new_tokens (the prefix counts towards
it); `CriticSamplingResult.prefix_lens` reports the tokens actually forced.

Randomness. Initial samples are `generate_samples(seed=seed)`'s. Repair and refine draw from
their own streams of the same seed (REPAIR_STREAM, REFINE_STREAM), row j (0..N-1) of problem
i with sample id i * N + j, so every program depends only on (models, problem, seed, i, j):
not on the batch size, on which other problems were in the run, or on the order the sandbox
answered in.

JAX is imported inside the functions, so `import coderl_jax.critic_sampling` stays light.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from coderl_jax.critic_sampling.planning import Plan, _count, plan, seed_rows
from coderl_jax.critic_sampling.results import (KEPT_NO_EXAMPLE_TESTS, KEPT_NO_REPAIR_MODEL,
                                                KEPT_REFINE_OFF, CriticSamplingResult)

if TYPE_CHECKING:
    from coderl_jax.loading import LoadedModel

log = logging.getLogger(__name__)

# fold_in tags of the repair and refine sampling streams (far above any initial sample id).
REPAIR_STREAM = 0x5E1A_0001
REFINE_STREAM = 0x5E1A_0002


@dataclasses.dataclass(frozen=True)
class Models:
    """The models of critic sampling.

    actor: the actor (config, params, tokenizer: `loading.load_model`).
    critic: a `scoring.Scorer` whose classes include "PassedTest" (the binary critic; p(Fail)
      is taken as 1 - p(Pass)); it reads the actor's token ids.
    repair: the repair model (its tokenizer None: the actor's), or None: then a problem with
      no passing program keeps its initial programs (mode "none", kept KEPT_NO_REPAIR_MODEL).
    """

    actor: LoadedModel
    critic: Any
    repair: LoadedModel | None = None


@dataclasses.dataclass
class _Candidates:
    """One problem's programs at one round, with what the driver learns about them."""

    texts: list[str]
    ids: list[list[int]]  # canonical ids + EOS (module docstring)
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


@dataclasses.dataclass
class _ProblemState:
    """Everything critic sampling knows about one problem, filled in round by round."""

    index: int
    problem: Any
    prompt_text: str
    prompt_ids: list[int]  # the actor's (and critic's) encoder input
    initial: tuple[str, ...] = ()
    first: _Candidates | None = None  # the initial programs, when judged
    repaired: _Candidates | None = None  # the repair model's programs
    refined: list[str] | None = None  # the refined programs, in seed order
    prefix_lens: list[int] = dataclasses.field(default_factory=list)


@dataclasses.dataclass(frozen=True)
class _Run:
    """The fixed inputs of one `critic_sample` call."""

    models: Models
    executor: Any
    sampling: Any
    seed: int
    pass_index: int  # column of "PassedTest" in the critic's outputs
    repair_top_m: int
    max_source_length: int
    batch_size: int

    @property
    def n(self) -> int:
        return self.sampling.num_samples

    def stream(self, tag: int):
        import jax

        return jax.random.fold_in(jax.random.key(self.seed), tag)

    def candidates(self, texts: Sequence[str]) -> _Candidates:
        tok, eos = self.models.actor.tokenizer, self.models.actor.config.eos_token_id
        return _Candidates(list(texts), [list(tok.encode(t, add_special_tokens=False)) + [eos]
                                         for t in texts])


def critic_sample(
    problems: Sequence,
    models: Models,
    executor,
    sampling,
    *,
    repair_top_m: int = 1,
    max_source_length: int = 600,
    seed: int = 0,
    batch_size: int = 8,
    initial: Sequence[Sequence[str]] | None = None,
    refine: bool = True,
) -> list[CriticSamplingResult]:
    """Critic sampling (paper Sec. 3.3) for every problem: refine, or repair then refine.

    Args:
      problems: B `data.problem.Problem`s.
      models: actor, binary critic and optional repair model (`Models`).
      executor: a `sandbox.Executor` (the caller's; not closed here), run on example tests.
      sampling: `decoding.SamplingParams` of every actor and repair decode; num_samples is N,
        the number of programs per problem; not greedy (resampling needs randomness).
      repair_top_m: M, failed programs sent to the repair model per problem.
      max_source_length: encoder tokens of actor, critic and repair prompts
        (`prompts.format_prompt` / `repair.repair_prompt` shorten the statement to fit).
      seed: PRNG seed (module docstring, "Randomness").
      batch_size: prompts per initial decode call; refine and repair decode
        batch_size * N rows per call (the same number of decoder rows).
      initial: optional B lists of N programs to start from instead of sampling the actor.
      refine: False skips every refine step (the paper's Table 4 "repair only"; "refine
        only" is models.repair None): problems whose plan is refine keep their initial
        programs (kept "refine_off"), repaired programs are final.

    Returns:
      B `CriticSamplingResult`s, in problem order, each with exactly N final programs.
    """
    run = _Run(models, executor, sampling, seed, _check_models(models, sampling),
               _count("repair_top_m", repair_top_m, 1), max_source_length,
               _count("batch_size", batch_size, 1))
    states = _states(run, problems)
    _sample_initial(run, states, initial)
    judged = [s for s in states if s.first is not None]
    _score_and_plan(run, [(s, s.first) for s in judged])
    to_refine = [(s, s.first) for s in judged if s.first.plan.mode == "refine"]
    to_repair = [s for s in judged if s.first.plan.mode == "repair"]
    refine_fn = _refine if refine else (lambda run, stage: None)
    if models.repair is None or not to_repair:
        refine_fn(run, to_refine)
        return [_result(s) for s in states]
    _repair(run, to_repair)
    # The actor refines the first-round problems while the sandbox judges the repairs.
    _score_and_plan(run, [(s, s.repaired) for s in to_repair],
                    overlap=functools.partial(refine_fn, run, to_refine))
    refine_fn(run, [(s, s.repaired) for s in to_repair if s.repaired.plan.mode == "refine"])
    return [_result(s) for s in states]


def _check_models(models: Models, sampling) -> int:
    """Reject what critic sampling cannot run with; returns the critic's PassedTest column."""
    from coderl_jax import outcomes

    if sampling.greedy:
        raise ValueError("critic sampling resamples programs; greedy decoding would repeat "
                         "one program (use temperature sampling)")
    critic = models.critic
    classes = tuple(critic.classes or ())
    if outcomes.PASSED_TEST not in classes:
        raise ValueError(f"the critic must have a {outcomes.PASSED_TEST!r} class (a binary "
                         f"critic), got classes {classes or None}")
    if len(models.actor.tokenizer) > critic.config.vocab_size:
        raise ValueError(f"the critic reads the actor's token ids, but its vocabulary "
                         f"({critic.config.vocab_size}) is smaller than the actor "
                         f"tokenizer's ({len(models.actor.tokenizer)})")
    return classes.index(outcomes.PASSED_TEST)


def _states(run: _Run, problems: Sequence) -> list[_ProblemState]:
    """One state per problem with its actor prompt (text and encoder ids)."""
    from coderl_jax.data.prompts import format_prompt

    tok, limit = run.models.actor.tokenizer, run.max_source_length
    states = []
    for i, problem in enumerate(problems):
        text = format_prompt(problem, tok, limit)
        states.append(_ProblemState(i, problem, text, tok(text)["input_ids"][:limit]))
    return states


def _sample_initial(run: _Run, states: list[_ProblemState],
                    initial: Sequence[Sequence[str]] | None) -> None:
    """Sets every state's initial programs, sampled or given; those of problems with example
    tests are submitted to the sandbox batch by batch (`_submit_initial`), so it judges one
    decode batch while the actor samples the next."""
    from coderl_jax.generation import generate_samples

    submit = functools.partial(_submit_initial, run, states)
    if initial is None:
        actor = run.models.actor
        initial = generate_samples(actor.config, actor.params, actor.tokenizer,
                                   [s.prompt_text for s in states], run.sampling,
                                   seed=run.seed, batch_size=run.batch_size,
                                   max_source_length=run.max_source_length, on_batch=submit)
    else:
        _check_initial(run, states, initial)
        submit(range(len(states)), initial)
    for state, programs in zip(states, initial):
        state.initial = tuple(programs)


def _check_initial(run: _Run, states: list[_ProblemState],
                   initial: Sequence[Sequence[str]]) -> None:
    if len(initial) != len(states):
        raise ValueError(f"initial must hold one list per problem ({len(states)}), "
                         f"got {len(initial)}")
    for state, programs in zip(states, initial):
        if len(programs) != run.n or not all(isinstance(t, str) for t in programs):
            raise ValueError(f"problem {state.problem.task_id!r}: initial must hold N = "
                             f"{run.n} program strings, got {len(programs)}")


def _submit_initial(run: _Run, states: list[_ProblemState], indices: Sequence[int],
                    batch_programs: Sequence[Sequence[str]]) -> None:
    """`on_batch` of the initial decode: queue the programs of problems with example tests."""
    for i, programs in zip(indices, batch_programs):
        if states[i].problem.example_tests:
            states[i].first = run.candidates(programs)
            _submit(run, states[i].problem, states[i].first)


def _submit(run: _Run, problem, cand: _Candidates) -> None:
    """Queue every program of `cand` on `problem`'s example tests (returns at once)."""
    cand.futures = [run.executor.submit(problem, _runnable(problem, t), tests="example")
                    for t in cand.texts]


def _runnable(problem, text: str) -> str:
    """The program the sandbox runs: a completion continues its prompt (HumanEval)."""
    from coderl_jax.generation import COMPLETION_SOURCES

    return problem.question + text if problem.source in COMPLETION_SOURCES else text


def _score_and_plan(run: _Run, stage: list[tuple[_ProblemState, _Candidates]],
                    overlap: Callable[[], None] | None = None) -> None:
    """Score every program of `stage` (already submitted to the sandbox) with the critic
    while the sandbox runs, run `overlap()` (more model work) if given, then collect the
    verdicts and plan each problem. Fills the candidates."""
    from coderl_jax import outcomes

    rows = [(s.prompt_ids, ids, cand) for s, cand in stage for ids in cand.ids]
    if rows:
        probs = run.models.critic.critic_probs([r[0] for r in rows], [r[1] for r in rows])
        for (_, _, cand), p in zip(rows, probs):
            cand.pass_probs.append(np.asarray(p, np.float64)[:, run.pass_index])
    if overlap is not None:
        overlap()
    internal = 0
    for _, cand in stage:
        cand.verdicts = [f.result() for f in cand.futures]
        internal += sum(v.outcome == outcomes.INTERNAL_ERROR for v in cand.verdicts)
        cand.plan = plan(cand.passed, cand.pass_probs, run.n, run.repair_top_m)
    if internal:
        log.warning("critic sampling: the sandbox could not judge %d programs on their "
                    "example tests (InternalError, counted as failed)", internal)


def _refine(run: _Run, stage: list[tuple[_ProblemState, _Candidates]]) -> None:
    """The actor continues each refine seed's prefix `count` times (all problems batched);
    sets each state's refined programs and forced prefix lengths."""
    from coderl_jax.decoding import decode_texts

    width = run.sampling.max_new_tokens
    rows = [(s, cand.ids[seed.source][:min(seed.prefix_len, width)], s.index * run.n + j)
            for s, cand in stage
            for j, seed in enumerate(cand.plan.refine[k] for k in seed_rows(cand.plan.refine))]
    if not rows:
        return
    actor = run.models.actor
    texts = decode_texts(actor.config, actor.params, actor.tokenizer,
                         [s.prompt_ids for s, _, _ in rows],
                         run.stream(REFINE_STREAM), _one_sample(run.sampling),
                         prefixes=[prefix for _, prefix, _ in rows],
                         sample_ids=[sid for _, _, sid in rows],
                         chunk=run.batch_size * run.n, sort_by_length=True)
    for s, _ in stage:
        s.refined, s.prefix_lens = [], []
    for (s, prefix, _), (text,) in zip(rows, texts):
        s.refined.append(text)
        s.prefix_lens.append(len(prefix))


def _repair(run: _Run, states: list[_ProblemState]) -> None:
    """Repair prompts of each state's planned failed programs; the repair model samples
    `count` programs each; they are submitted to the sandbox (state.repaired)."""
    from coderl_jax.data import repair as repair_lib
    from coderl_jax.decoding import decode_texts

    model = run.models.repair
    tok = model.tokenizer or run.models.actor.tokenizer
    rows = []  # (state, repair prompt ids, sample id)
    for s in states:
        cand = s.first
        for j, k in enumerate(seed_rows(cand.plan.repair)):
            source = cand.plan.repair[k].source
            verdict = cand.verdicts[source]
            text = repair_lib.repair_prompt(s.problem, cand.texts[source], verdict.outcome,
                                            verdict.error_type, tok, run.max_source_length)
            rows.append((s, tok(text)["input_ids"][:run.max_source_length], s.index * run.n + j))
    # Empty prefixes: the same prefix-width compile as `_refine`'s decode.
    texts = decode_texts(model.config, model.params, tok, [ids for _, ids, _ in rows],
                         run.stream(REPAIR_STREAM), _one_sample(run.sampling),
                         prefixes=[[]] * len(rows), sample_ids=[sid for _, _, sid in rows],
                         chunk=run.batch_size * run.n, sort_by_length=True)
    repaired: dict[int, list[str]] = {s.index: [] for s in states}
    for (s, _, _), (text,) in zip(rows, texts):
        repaired[s.index].append(text)
    for s in states:
        s.repaired = run.candidates(repaired[s.index])
        _submit(run, s.problem, s.repaired)


def _one_sample(sampling):
    """Refine and repair rows are one sample each (their counts are rows, not samples)."""
    return dataclasses.replace(sampling, num_samples=1)


def _result(s: _ProblemState) -> CriticSamplingResult:
    """The outcome of one problem from its final state."""
    common = dict(task_id=s.problem.task_id, initial=s.initial)
    if s.first is None:
        return CriticSamplingResult(programs=s.initial, mode="none", kept=KEPT_NO_EXAMPLE_TESTS,
                                    num_passed=0, plan=Plan(), **common)
    common.update(num_passed=sum(s.first.passed), plan=s.first.plan,
                  initial_outcomes=s.first.outcomes)
    if s.repaired is not None:
        common.update(repaired=tuple(s.repaired.texts), repaired_outcomes=s.repaired.outcomes,
                      repair_plan=s.repaired.plan)
    if s.refined is not None:
        mode = "repair+refine" if s.repaired is not None else "refine"
        return CriticSamplingResult(programs=tuple(s.refined), mode=mode, kept=None,
                                    prefix_lens=tuple(s.prefix_lens), **common)
    if s.repaired is not None:
        return CriticSamplingResult(programs=tuple(s.repaired.texts), mode="repair",
                                    kept=None, **common)
    kept = KEPT_REFINE_OFF if s.first.plan.mode == "refine" else KEPT_NO_REPAIR_MODEL
    return CriticSamplingResult(programs=s.initial, mode="none", kept=kept, **common)
