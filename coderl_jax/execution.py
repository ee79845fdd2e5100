"""Judging a samples file against a benchmark's tests: what `coderl execute` (and the demo) run.

    records = execute_file("mbpp", "mbpp.jsonl", "samples.jsonl", "results.jsonl")
    print(summary_table(records))

One results line per sample, in the samples file's order (formats in coderl_jax/data/jsonl.py),
its task id exactly as the samples file wrote it (int or str).
A sample whose task id is not in the data is an error naming the samples file and line; a
sample the executor could not judge is written as InternalError (reward null) with its
`detail`, and counted in the summary, never dropped and never a pass.

Pure Python: never imports JAX or numpy, so `coderl execute` starts fast.
"""

from __future__ import annotations

import collections
import concurrent.futures
import os
from typing import Any

from coderl_jax import outcomes


def execute_file(
    dataset: str,
    data: str | os.PathLike | None,
    samples_path: str | os.PathLike,
    out_path: str | os.PathLike,
    *,
    example_tests: str | os.PathLike | None = None,
    tests: str = "hidden",
    workers: int | None = None,
    timeout: float = 4.0,
    memory_mb: int = 2048,
    verdict_policy: str = outcomes.DEFAULT_VERDICT_POLICY,
    stop_at_first_failure: bool | None = None,
    progress: bool = True,
) -> list[dict[str, Any]]:
    """Judges every sample of `samples_path` and writes the results file `out_path`.

    Args:
      dataset, data: the problems (`coderl_jax.data.loaders.load_problems(dataset, data)`).
      example_tests: APPS only: CodeRL's example-test file or folder.
      tests: "hidden" or "example".
      workers: sandbox worker processes (default: CPU count).
      timeout: seconds per test; memory_mb: address-space limit per program.
      verdict_policy: `outcomes.VERDICT_POLICIES` ("first_failure", the default everywhere:
        a program stops at its first failing test, as in RL; "all_tests"), recorded in
        every results line. stop_at_first_failure (deprecated): True / False pick
        "first_failure" / "all_tests".

    Returns:
      the results records as written, each with the executor's `detail` added (only
      InternalError records keep it in the file, so a reader can see why).
    """
    from coderl_jax.sandbox import Executor

    if stop_at_first_failure is not None:
        verdict_policy = "first_failure" if stop_at_first_failure else "all_tests"
    stop = outcomes.stops_at_first_failure(verdict_policy)
    # Programs must not read the expected outputs from the data files.
    hide = [os.path.dirname(os.path.abspath(data))] if data and os.path.exists(data) else []
    # The sandbox workers start (interpreters, namespaces) while the data modules are
    # imported and the data is read: start-up counts in every `coderl execute` call. Started
    # before those imports, so the second core is not idle during them (~20 ms).
    pool = concurrent.futures.ThreadPoolExecutor(1)
    executor_future = pool.submit(Executor, workers, timeout=timeout, memory_mb=memory_mb,
                                  hide_paths=hide)
    pool.shutdown(wait=False)
    try:
        from coderl_jax.data import jsonl, loaders

        kwargs = {"example_tests": example_tests} if example_tests else {}
        problems = {p.task_id: p for p in loaders.load_problems(dataset, data, **kwargs)}
        samples = jsonl.read_samples(samples_path)
        for sample in samples:
            if sample.task_id not in problems:
                raise jsonl.JsonlError(samples_path, sample.line,
                                       f"unknown task_id {sample.task_id!r} (not in {data})")
        jobs = [(problems[s.task_id], s.program(problems[s.task_id].question))
                for s in samples]
    except BaseException:
        executor_future.result().close()
        raise
    with executor_future.result() as executor:
        verdicts = executor.run(jobs, tests=tests, stop_at_first_failure=stop,
                                progress=progress)
    records = []
    for index, (sample, verdict) in enumerate(zip(samples, verdicts)):
        record = jsonl.result_record(sample.raw_task_id, index, verdict, verdict_policy)
        if verdict.outcome == outcomes.INTERNAL_ERROR:
            record["detail"] = verdict.detail
        records.append(record)
    jsonl.write_results(out_path, records)
    for record, verdict in zip(records, verdicts):
        record["detail"] = verdict.detail
    return records


def summary_table(records: list[dict]) -> str:
    """Outcome counts and shares, the error subtypes seen, and every InternalError's reason."""
    counts = collections.Counter(r["outcome"] for r in records)
    total = len(records)
    lines = [f"{'outcome':<14}{'count':>8}{'share':>9}"]
    for name in (*outcomes.OUTCOMES, outcomes.INTERNAL_ERROR):
        lines.append(f"{name:<14}{counts.get(name, 0):>8}{counts.get(name, 0) / total:>9.1%}")
    lines.append(f"{'total':<14}{total:>8}")
    subtypes = collections.Counter(r["error_type"] for r in records if r["error_type"])
    if subtypes:
        lines.append("error subtypes: " + ", ".join(f"{k} {v}" for k, v in
                                                    subtypes.most_common()))
    internal = [r for r in records if r["outcome"] == outcomes.INTERNAL_ERROR]
    for r in internal[:20]:
        lines.append(f"InternalError: task {r['task_id']} sample {r['sample_index']}: "
                     f"{r.get('detail', '')}")
    if len(internal) > 20:
        lines.append(f"... and {len(internal) - 20} more InternalError samples")
    return "\n".join(lines)
