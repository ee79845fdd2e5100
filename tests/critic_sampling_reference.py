"""The critic-sampling driver as it was before its rounds became named functions
(coderl_jax/critic_sampling.py at commit 4d30b6b, `critic_sample` and its helpers, verbatim
but for the imports below). Kept as the reference that `critic_sampling.driver.critic_sample`
must equal, program for program: test_critic_sampling_driver.py compares the two.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np

from coderl_jax.critic_sampling.planning import Plan, _count, plan, seed_rows
from coderl_jax.critic_sampling.results import (KEPT_NO_EXAMPLE_TESTS, KEPT_NO_REPAIR_MODEL,
                                                CriticSamplingResult)

REPAIR_STREAM = 0x5E1A_0001
REFINE_STREAM = 0x5E1A_0002


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
