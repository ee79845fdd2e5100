"""Training throughput: the whole `coderl finetune` main against its bare jitted train step.

    python benchmarks/train_throughput.py [--steps 120] [--rounds 2] [--problems 1200]
                                          [--checkpoint-period 100] [--cache-dir DIR]

Both run the CPU demo's warm start (`--gin_file experiments/demo_cpu.gin`: the d128 2+2-layer
T5 with a 2,048-token vocabulary, batch 32, source 256 / target 64 tokens, AdamW at the
demo's learning rate), each in a fresh child process of its own:

  main:  `python -m coderl_jax finetune --dataset synthetic --tokenizer ... --gin_file
         experiments/demo_cpu.gin` on synthetic train problems, from scratch, with everything
         a run has on: the host data pipeline (epoch shuffles, tokenised examples padded into
         a numpy `Batch` per step, `batch.to_global`), metrics.jsonl + TensorBoard every
         `--log-period` steps (the demo's 10), the tqdm bar, and synchronous orbax
         checkpoints every `--checkpoint-period` steps (the demo's 100, so with the default
         120 steps one checkpoint falls inside a timed window, as in the demo's warm start;
         the final one comes after the last timed window). Its held-out greedy evaluation
         through the sandbox is off (`finetune.eval_problems = 0`): that is evaluation, not
         training throughput.
         tokens/s: from the main's own metrics.jsonl, every log window after the first (the
         first holds the compile): total tokens / total seconds of those windows.
  bare:  `step.make_train_step` on the same gin-bound model, trainer and optimizer configs,
         one device-resident batch of the same shape, `--log-period` warm-up steps (compile,
         allocator warm-up), then the remaining steps timed, blocking only at the end
         (`benchmarks/model_speed.py`'s way of timing a step).

tokens/s counts source + target tokens per step (32 x (256 + 64)), padding included, on both
sides (the main's loop counts its batch shape the same way). The two alternate (main, bare,
main, bare, ...) for `--rounds` rounds so that drifting background load hits both alike; the
figures are the means over rounds, the ratio's range is the lowest and highest of the rounds'
own ratios. Target: the main keeps >= 90% of the bare step's tokens/s.

The synthetic problems and the byte-level BPE tokenizer are made once and cached in
`--cache-dir`; every main run gets a fresh workdir (a run resumes from its checkpoints
otherwise).
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

REPO = pathlib.Path(__file__).resolve().parents[1]
GIN_FILE = "experiments/demo_cpu.gin"
RUN_FILE = "runs/finetune.gin"


def bindings(args) -> list[str]:
    """The gin bindings both sides share (on top of the demo experiment)."""
    return [f"TRAIN_STEPS = {args.steps}", f"LOG_PERIOD = {args.log_period}",
            f"CHECKPOINT_PERIOD = {args.checkpoint_period}", "finetune.eval_problems = 0"]


# -- data (cached) -------------------------------------------------------------------------------
def prepare(cache: pathlib.Path, num_problems: int, vocab_size: int) -> tuple[str, str]:
    """(problems JSONL, tokenizer dir) in `cache`, made on first use."""
    from coderl_jax.data import corpus, synthetic, tokenizer

    cache.mkdir(parents=True, exist_ok=True)
    problems = cache / f"synthetic_train_{num_problems}.jsonl"
    if not problems.exists():
        synthetic.save_problems(synthetic.generate_problems("train", num_problems), problems)
    tok_dir = cache / f"tokenizer_{vocab_size}"
    if not (tok_dir / "tokenizer.json").exists():
        texts = corpus.read_corpus(max_bytes=2_000_000).texts()
        tokenizer.save_tokenizer(tokenizer.train_tokenizer(texts, vocab_size), tok_dir)
    return str(problems), str(tok_dir)


# -- the two sides -------------------------------------------------------------------------------
def run_main(args, problems: str, tok_dir: str) -> dict:
    """`coderl finetune` in a child process; steady-state tokens/s from its metrics.jsonl."""
    workdir = pathlib.Path(tempfile.mkdtemp(prefix="finetune_", dir=args.cache_dir))
    cmd = [sys.executable, "-m", "coderl_jax", "finetune", "--workdir", str(workdir),
           "--dataset", "synthetic", "--data", problems, "--tokenizer", tok_dir,
           "--gin_file", GIN_FILE] + [f"--gin.{b.replace(' ', '')}" for b in bindings(args)]
    start = time.monotonic()
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
    wall = time.monotonic() - start
    if done.returncode != 0:
        raise SystemExit(f"coderl finetune failed:\n{done.stderr[-3000:]}")
    records = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()
               if line.strip()]
    windows = [r for r in records if "tokens_per_second" in r]
    steady = windows[1:]  # the first window holds the compile
    if not steady:
        raise SystemExit(f"need at least 2 log windows, got {len(windows)}: raise --steps")
    # A window's seconds = its steps / its steps_per_second.
    seconds = sum((r["step"] - prev["step"]) / r["steps_per_second"]
                  for prev, r in zip(windows, steady))
    steps = steady[-1]["step"] - windows[0]["step"]
    tokens_per_step = args.batch * (args.source_length + args.target_length)
    per_window = [round(r["tokens_per_second"]) for r in steady]
    if not args.keep:
        shutil.rmtree(workdir, ignore_errors=True)
    return {"tokens_per_second": steps * tokens_per_step / seconds, "windows": per_window,
            "wall_seconds": wall}


def bare_child(args) -> int:
    """The bare jitted step on the same gin-bound configs; prints its JSON result."""
    from coderl_jax.host_memory import retain_freed_memory

    retain_freed_memory()  # as the mains do (train/wiring.py run_stage), before JAX starts
    import jax
    import numpy as np

    from coderl_jax import gin_utils, partitioning
    from coderl_jax.train import configurables as c  # the names the gin files bind
    from coderl_jax.training import batch as batch_lib
    from coderl_jax.training import optimizer as optimizer_lib
    from coderl_jax.training import state as state_lib
    from coderl_jax.training import step as step_lib

    gin_utils.parse([GIN_FILE], bindings(args), defaults=[RUN_FILE])
    config = c.model_config()
    trainer = c.TrainerConfig()
    optimizer = c.OptimizerConfig()
    assert trainer.batch_size == args.batch, (trainer.batch_size, args.batch)
    mesh = partitioning.make_mesh(trainer.mesh_data, trainer.mesh_model)
    tx, schedule = optimizer_lib.make_optimizer(optimizer, trainer.train_steps)
    model = step_lib.ActorModel(config)
    state, shardings = state_lib.create_state(model, tx, mesh, trainer.seed)
    step = step_lib.make_train_step(model, tx, schedule, mesh, shardings,
                                    trainer.num_microbatches)
    rng = np.random.default_rng(0)
    examples = [{"inputs": rng.integers(5, config.vocab_size, size=args.source_length),
                 "targets": rng.integers(5, config.vocab_size, size=args.target_length)}
                for _ in range(args.batch)]
    batch = batch_lib.to_global(
        batch_lib.ce_batch(examples, args.batch, args.source_length, args.target_length),
        step_lib.batch_shardings(mesh))
    warmup = args.log_period
    for _ in range(warmup):
        state, metrics = step(state, batch)
    jax.block_until_ready(metrics)
    timed = args.steps - warmup
    start = time.perf_counter()
    for _ in range(timed):
        state, metrics = step(state, batch)
    jax.block_until_ready(metrics)
    seconds = time.perf_counter() - start
    tokens_per_step = args.batch * (args.source_length + args.target_length)
    print(json.dumps({"tokens_per_second": timed * tokens_per_step / seconds,
                      "version": f"jax {jax.__version__} on {jax.devices()[0].platform}",
                      "params": int(sum(x.size for x in jax.tree.leaves(state.params)))}))
    return 0


def run_bare(args) -> dict:
    cmd = [sys.executable, os.path.abspath(__file__), "--child", "bare"] + args.passthrough
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
    if done.returncode != 0:
        raise SystemExit(f"bare step failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=120, help="train steps per run")
    parser.add_argument("--rounds", type=int, default=2, help="alternating (main, bare) pairs")
    parser.add_argument("--problems", type=int, default=1200,
                        help="synthetic train problems (the demo's 1,200)")
    parser.add_argument("--vocab-size", type=int, default=2048)
    parser.add_argument("--log-period", type=int, default=10,
                        help="the main's log window; also the bare step's warm-up steps")
    parser.add_argument("--checkpoint-period", type=int, default=100)
    parser.add_argument("--cache-dir", default=os.path.join(tempfile.gettempdir(),
                                                            "coderl_train_throughput"))
    parser.add_argument("--keep", action="store_true", help="keep the main's workdirs")
    parser.add_argument("--child", choices=("bare",), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    # The demo experiment's shapes (experiments/demo_cpu.gin); asserted in the bare child.
    args.batch, args.source_length, args.target_length = 32, 256, 64
    args.passthrough = ["--steps", str(args.steps), "--log-period", str(args.log_period),
                        "--checkpoint-period", str(args.checkpoint_period)]
    if args.child:
        return bare_child(args)
    if args.steps < 3 * args.log_period:
        parser.error("--steps must be at least 3 log periods (one compile window + 2 timed)")

    problems, tok_dir = prepare(pathlib.Path(args.cache_dir), args.problems, args.vocab_size)
    mains, bares, ratios, info = [], [], [], {}
    for r in range(args.rounds):
        m = run_main(args, problems, tok_dir)
        b = run_bare(args)
        mains.append(m["tokens_per_second"])
        bares.append(b["tokens_per_second"])
        ratios.append(m["tokens_per_second"] / b["tokens_per_second"])
        info = b
        print(f"... round {r + 1}: main {m['tokens_per_second']:,.0f} tok/s (windows "
              f"{m['windows']}, {m['wall_seconds']:.0f} s wall), bare "
              f"{b['tokens_per_second']:,.0f} tok/s", file=sys.stderr, flush=True)
    main_tps, bare_tps = statistics.mean(mains), statistics.mean(bares)
    ratio = main_tps / bare_tps
    spread = f" ({min(ratios):.2f}-{max(ratios):.2f})" if len(ratios) > 1 else ""
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cpus; "
          f"{info['version']}; each side a fresh process, alternating, {args.rounds} rounds")
    print(f"demo_cpu: {info['params'] / 1e6:.1f}M params, batch {args.batch}, source "
          f"{args.source_length}, target {args.target_length}; {args.steps} steps per run, "
          f"first {args.log_period} excluded (compile); main: log every {args.log_period}, "
          f"checkpoint every {args.checkpoint_period}, tqdm on\n")
    print("| config | bare step tok/s | coderl finetune tok/s | ratio (lo-hi) | target |")
    print("|---|---|---|---|---|")
    print(f"| demo_cpu (b{args.batch}, {args.source_length}+{args.target_length}) | "
          f"{bare_tps:,.0f} | {main_tps:,.0f} | {ratio:.2f}{spread} | >= 0.90 "
          f"{'met' if ratio >= 0.9 else 'MISSED'} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
