"""Offline RL data: groups of judged samples from files, the official release's setting.

A samples file + its results file (+ the greedy baseline's two files), read by the one
labelled-samples reader (`training.labelled.read_labelled_samples`). A samples line may
carry "tokens" (the exact ids an online run sampled, as `RLConfig.save_rollouts` writes
them); otherwise the program is tokenized. The first `num_samples` lines of each problem
are used; InternalError lines stay in (the RL batch drops and counts them).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from coderl_jax import outcomes
from coderl_jax.rl.batch import Group
from coderl_jax.rl.rollout import ProblemData
from coderl_jax.training.labelled import read_labelled_samples


def _read(samples_path, results_path, problems: dict, tokenizer, max_target_length: int,
          reward_fn: Callable, policy: dict) -> dict[str, list]:
    """task id -> [(token ids, outcome, reward)] in file order (the results file checked
    against `policy`: read_labelled_samples' verdict-policy keywords)."""
    labelled, _ = read_labelled_samples(samples_path, results_path, problems,
                                        keep_internal=True, **policy)
    out: dict[str, list] = {}
    for s in labelled:
        ids = s.tokens
        if ids is None:
            ids = tokenizer.encode(s.code, add_special_tokens=False) + [tokenizer.eos_token_id]
        reward = (float("nan") if s.outcome == outcomes.INTERNAL_ERROR
                  else float(reward_fn(problems[s.task_id], s)))
        out.setdefault(s.task_id, []).append((list(ids)[:max_target_length], s.outcome, reward))
    return out


def offline_groups(problems: Sequence[ProblemData], samples_path, results_path,
                   baseline_samples_path=None, baseline_results_path=None, *, tokenizer,
                   num_samples: int, max_target_length: int,
                   reward_fn: Callable, verdict_policy: str | None = None,
                   allow_verdict_policy_mismatch: bool = False) -> list[Group]:
    """One judged `Group` per problem with samples in the file, in problem order (as the
    online mode's pool: the same seed gives the same problem batches). With
    `verdict_policy`, both results files must have been judged with it."""
    by_id = {d.problem.task_id: d.problem for d in problems}
    policy = dict(verdict_policy=verdict_policy,
                  allow_verdict_policy_mismatch=allow_verdict_policy_mismatch)
    args = (by_id, tokenizer, max_target_length, reward_fn, policy)
    sampled = _read(samples_path, results_path, *args)
    base = (_read(baseline_samples_path, baseline_results_path, *args)
            if baseline_samples_path else {})
    groups = []
    for d in problems:
        task_id = d.problem.task_id
        if task_id not in sampled:
            continue
        entries = sampled[task_id][:num_samples]
        b = base[task_id][0] if task_id in base else None
        groups.append(Group(task_id, d.prompt_ids, d.reference_ids, [e[0] for e in entries],
                            [e[1] for e in entries], None if b is None else b[1],
                            [e[2] for e in entries], None if b is None else b[2],
                            references=d.references))
    return groups
