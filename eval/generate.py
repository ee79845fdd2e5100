"""`coderl generate`: sample programs for a prompts file (logic: coderl_jax.generation).

    coderl generate --model MODEL --prompts PROMPTS.jsonl --out SAMPLES.jsonl \
        [--greedy | --temperature T --top-p P] [--num-samples N] [--max-new-tokens L] \
        [--seed S] [--batch-size B] [--max-source-length L]

MODEL is our model dir (config.json + checkpoints/), a Hugging Face model dir, or a hub id
such as Salesforce/codet5-large-ntp-py. JAX and transformers are imported inside `main` only.
"""

from __future__ import annotations

import argparse
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True,
                        help="our model dir, a Hugging Face model dir, or a hub id")
    parser.add_argument("--prompts", required=True,
                        help='JSONL, one {"task_id": ..., "prompt": "..."} per line')
    parser.add_argument("--out", required=True,
                        help='output JSONL, one {"task_id": ..., "code": "..."} per sample')
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--greedy", action="store_true", help="argmax decoding (one sample)")
    mode.add_argument("--temperature", type=float, default=None,
                      help="sampling temperature (default 1.0)")
    parser.add_argument("--top-p", type=float, default=None,
                        help="nucleus sampling mass (default 1.0: no truncation)")
    parser.add_argument("--num-samples", type=int, default=1, help="samples per prompt")
    parser.add_argument("--max-new-tokens", type=int, default=512)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=8, help="prompts per decode call")
    parser.add_argument("--max-source-length", type=int, default=600,
                        help="prompt tokens kept (CodeRL uses 600); longer prompts are truncated")
    parser.add_argument("--step", type=int, default=None,
                        help="checkpoint step of our model dir (default: latest)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def main(args: argparse.Namespace) -> int:
    if args.greedy and args.top_p is not None:
        print("coderl generate: --top-p has no effect with --greedy", file=sys.stderr)
        return 2
    from coderl_jax.host_memory import retain_freed_memory

    retain_freed_memory()  # before JAX starts its threads
    from coderl_jax.decoding import SamplingParams
    from coderl_jax.generation import generate_file

    try:
        sampling = SamplingParams(
            num_samples=args.num_samples,
            max_new_tokens=args.max_new_tokens,
            greedy=args.greedy,
            temperature=1.0 if args.temperature is None else args.temperature,
            top_p=1.0 if args.top_p is None else args.top_p,
        )
    except ValueError as e:
        print(f"coderl generate: {e}", file=sys.stderr)
        return 2
    try:
        written = generate_file(
            args.model, args.prompts, args.out, sampling,
            seed=args.seed, batch_size=args.batch_size,
            max_source_length=args.max_source_length, step=args.step,
            progress=not args.no_progress,
        )
    except (ValueError, FileNotFoundError) as e:
        # Bad input (a malformed prompts line, a missing checkpoint or weight file, an unknown
        # config field): the message names the file; a traceback would only bury it.
        print(f"coderl generate: {e}", file=sys.stderr)
        return 2
    print(f"wrote {written} samples to {args.out}", file=sys.stderr)
    return 0
