"""The demo's test-split evaluation: sample, judge, score a system; critic sampling's runs."""

from __future__ import annotations

import json
import pathlib
from collections.abc import Sequence
from typing import Any

from coderl_jax.demo.config import DemoConfig

REPORTED_K = (1, 5, 10, 20)  # pass@k columns (those <= the samples per problem)


def evaluate_system(name: str, model_dir: str | None, test_path: pathlib.Path, test, out_dir,
                    cfg: DemoConfig, programs: list[list[str]] | None = None) -> dict:
    """Sample (unless `programs` are given), judge on hidden and example tests, evaluate.

    Writes samples.jsonl, results_{hidden,example}.jsonl and report.json to `out_dir`; returns
    the report (`metrics.evaluate`, plus "curve": pass@k for k = 1..N).
    """
    from coderl_jax.data import jsonl
    from coderl_jax.generation import generate_for_problems, load_model, sample_record

    out_dir.mkdir(parents=True, exist_ok=True)
    if programs is None:
        config, params, tok = load_model(model_dir)
        programs = generate_for_problems(config, params, tok, test,
                                         cfg.sampling(cfg.eval_samples), seed=cfg.seed,
                                         batch_size=8, max_source_length=cfg.max_source_length)
    samples_path = out_dir / "samples.jsonl"
    jsonl.write_jsonl(samples_path, (sample_record(p, code)
                                     for p, codes in zip(test, programs) for code in codes))
    report = _judge_and_score(samples_path, test_path, test, out_dir, cfg)
    (out_dir / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    return report


def _judge_and_score(samples_path: pathlib.Path, test_path: pathlib.Path, test, out_dir,
                     cfg: DemoConfig) -> dict:
    """Run the samples on the hidden and the example tests; pass@k, n@k and the curve."""
    from coderl_jax import metrics
    from coderl_jax.execution import execute_file

    rows = {}
    for tests in ("hidden", "example"):
        rows[tests] = execute_file("synthetic", test_path, samples_path,
                                   out_dir / f"results_{tests}.jsonl", tests=tests,
                                   workers=cfg.workers, progress=False)
    n = cfg.eval_samples
    ks = sorted({k for k in REPORTED_K if k <= n} | {n})
    report = metrics.evaluate(rows["hidden"], ks, [(1, n), (min(5, n), n)], rows["example"],
                              {p.task_id: p.difficulty for p in test})
    groups = metrics.group_by_task(rows["hidden"])
    report["curve"] = {k: 100.0 * metrics.mean(metrics.pass_at_k_by_task(groups, k).values())
                       for k in range(1, n + 1)}
    # Per problem, for the paired tests across systems and seeds (`demo/stats.py`).
    report["per_problem"] = {str(t): float(v)
                             for t, v in metrics.pass_at_k_by_task(groups, 1).items()}
    return report


def critic_sampling_programs(cfg: DemoConfig, actor_dir, critic_dir, repair_dir, test,
                             test_path: pathlib.Path, *, refine: bool = True,
                             repair_top_m: int | None = None
                             ) -> tuple[list[list[str]], dict[str, Any], dict[str, str]]:
    """The RL actor's programs refined/repaired by critic sampling (N per test problem).

    refine False / repair_dir None: the paper's Table 4 "repair only" / "refine only";
    repair_top_m: M (default cfg.repair_top_m).
    Returns (the final programs per problem, `critic_sampling.summarize` of the run with
    its `cut_diagnostics` (refine_seeds, cut_at_0_share, mean_cut), each problem's path:
    task id -> mode).
    """
    from coderl_jax import critic_sampling
    from coderl_jax.loading import load_model
    from coderl_jax.sandbox import Executor
    from coderl_jax.scoring import Scorer

    # The repair model reads the actor's tokenizer (as the demo always has: one tokenizer).
    repair = load_model(str(repair_dir), with_tokenizer=False) if repair_dir else None
    models = critic_sampling.Models(load_model(str(actor_dir)), Scorer.load(str(critic_dir)),
                                    repair)
    with Executor(cfg.workers, hide_paths=[str(test_path.parent.resolve())]) as executor:
        results = critic_sampling.critic_sample(
            test, models, executor, cfg.sampling(cfg.eval_samples),
            repair_top_m=repair_top_m or cfg.repair_top_m,
            max_source_length=cfg.max_source_length, seed=cfg.seed, refine=refine)
    summary = {**critic_sampling.summarize(results), **critic_sampling.cut_diagnostics(results)}
    return ([list(r.programs) for r in results], summary,
            {r.task_id: r.mode for r in results})


def pass_by_path(modes: dict[str, str], results_paths: dict[str, pathlib.Path]
                 ) -> dict[str, dict[str, Any]]:
    """Per critic-sampling path (refine / repair / repair+refine / none): how many test
    problems took it and the sample pass rate (%) of each system on those problems."""
    from coderl_jax.data.jsonl import read_results

    rows = {key: read_results(path) for key, path in results_paths.items()}
    out = {}
    for mode in sorted(set(modes.values())):
        tasks = {t for t, m in modes.items() if m == mode}
        entry = {"problems": len(tasks)}
        for key, rs in rows.items():
            entry[key] = _pass_rate([r for r in rs if r["task_id"] in tasks])
        out[mode] = entry
    return out


def _pass_rate(rows: Sequence[dict]) -> float:
    return 100.0 * sum(r["outcome"] == "PassedTest" for r in rows) / max(len(rows), 1)
