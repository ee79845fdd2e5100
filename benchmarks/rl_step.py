"""One online RL step, broken down, with the sandbox overlap switched on and off.

    python benchmarks/rl_step.py [--configs demo,codet5-small] [--steps 3] [--workers 2]
                                 [--actor DIR --critic DIR]   # trained demo models instead

For each config, the library's RL pieces as `coderl train-rl` runs them (`rl.rollout.Rollout`
collects, `rl.source.rl_draw` builds the weighted batch, the one train step updates) take
P = 8 synthetic train problems per step, K = 4 samples + 1 greedy baseline each, score them
with a 4-class critic of the same shape and update. Reported per step
(median over --steps measured steps after one warm-up step, overlap on and off alternating):

  sampling   decoding the baselines and samples (programs go to the sandbox per chunk)
  execution  sandbox wall time, first submission to last verdict (total)
  waited     the part of it the step actually blocked on (the rollout's timings["wait"])
  critic     the critic's forward pass over the samples
  update     building the weighted batch + the jitted train step
  update step  the jitted train step alone, on the batch bucketed by length
               (RLConfig.length_buckets; --length-buckets '' pads to the full lengths)
  same, full padding  the same rollouts' update padded to max_source_length x max_new_tokens
               (paired with the one above: same rows, same machine load)
  step       the whole step

Targets (issue 12): with overlap on, waited <= 10% of the step; overlap on faster than off.
Random weights by default (their programs mostly fail to compile, so the sandbox's share is
small); --actor/--critic use trained demo models for a realistic mix of outcomes.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

os.environ.setdefault("JAX_PLATFORMS", "cpu")

CONFIGS = {
    # docs/design.md's demo model; source 256 / target 64 tokens as in the demo.
    "demo": dict(shape=dict(vocab_size=2048, d_model=128, d_kv=32, d_ff=512, num_layers=2,
                            num_heads=4), source=256, target=64, microbatches=1),
    # The demo model with the paper's source length 600 (synthetic prompts fill about a
    # third of it) and target 128: where bucketing by length has rows to shorten.
    "demo-600": dict(shape=dict(vocab_size=2048, d_model=128, d_kv=32, d_ff=512, num_layers=2,
                                num_heads=4), source=600, target=128, microbatches=1),
    # Salesforce/codet5-small's shape (60M), random weights, source 600 / target 128.
    "codet5-small": dict(shape=dict(vocab_size=32100, d_model=512, d_kv=64, d_ff=2048,
                                    num_layers=6, num_heads=8), source=600, target=128,
                         # 40 rows x 728 tokens: 4 microbatches keep the update in ~24 GB.
                         microbatches=4),
}


class TimedExecutor:
    """Wraps an Executor: records when programs were submitted and when verdicts arrived."""

    def __init__(self, executor):
        self.executor = executor
        self.reset()

    def reset(self):
        self.first_submit = None
        self.last_done = None

    def submit(self, *args, **kwargs):
        now = time.monotonic()
        self.first_submit = now if self.first_submit is None else self.first_submit
        future = self.executor.submit(*args, **kwargs)

        def done(_):
            self.last_done = time.monotonic()
        future.add_done_callback(done)
        return future

    @property
    def execution(self) -> float:
        if self.first_submit is None or self.last_done is None:
            return 0.0
        return self.last_done - self.first_submit


def build(name: str, args, tokenizer, problems):
    import jax

    from coderl_jax import partitioning
    from coderl_jax.models.config import T5Config
    from coderl_jax.models.critic import init_critic_params
    from coderl_jax.models.t5 import init_params
    from coderl_jax.rl import rollout as rollout_lib
    from coderl_jax.rl.config import RLConfig
    from coderl_jax.scoring import Scorer
    from coderl_jax.training import optimizer as optimizer_lib
    from coderl_jax.training import state as state_lib
    from coderl_jax.training import step as step_lib

    spec = CONFIGS[name]
    if args.actor and name == "demo":
        from coderl_jax.generation import load_model

        config, params, tokenizer = load_model(args.actor)
        critic = Scorer.load(args.critic)
    else:
        config = T5Config(**spec["shape"], num_decoder_layers=spec["shape"]["num_layers"],
                          dropout_rate=0.0)
        params = init_params(config, jax.random.key(0))
        critic = Scorer(config, init_critic_params(config, 4, jax.random.key(1)),
                        ("CompileError", "RuntimeError", "FailedTest", "PassedTest"))
    cfg = RLConfig(problems_per_step=8, num_samples=4, max_source_length=spec["source"],
                   max_new_tokens=spec["target"], **args.rl_options)
    mesh = partitioning.make_mesh()
    model = step_lib.ActorModel(config)
    tx, schedule = optimizer_lib.make_optimizer(optimizer_lib.OptimizerConfig(learning_rate=1e-4),
                                                1000)
    state, shardings = state_lib.create_state(model, tx, mesh, 0, params)
    step_fn = step_lib.make_train_step(model, tx, schedule, mesh, shardings,
                                       spec["microbatches"])
    prepared = rollout_lib.prepare_problems(problems, tokenizer, spec["source"], spec["target"])
    return config, tokenizer, cfg, critic, state, step_fn, step_lib.batch_shardings(mesh), prepared


def run_config(name: str, args, tokenizer, problems, executor) -> dict:
    import dataclasses

    import jax

    from coderl_jax.rl.rollout import Rollout
    from coderl_jax.rl.source import rl_draw
    from coderl_jax.training import batch as batch_lib

    config, tokenizer, cfg, critic, state, step_fn, b_shard, prepared = build(
        name, args, tokenizer, problems)
    timed = TimedExecutor(executor)
    rows = {True: [], False: []}

    def apply(state, draw):
        for b in draw.batches:
            state, metrics = step_fn(state, jax.tree.map(batch_lib.to_global, b, b_shard))
            jax.device_get(metrics)  # blocks: the update time is real
        return state
    # Every bucket shape compiles here, once, not inside a measured step.
    from coderl_jax.rl.batch import bucket_length
    from coderl_jax.training.sources import Draw

    for enc in {bucket_length(1 + k, cfg.max_source_length, cfg.length_buckets)
                for k in range(cfg.max_source_length)}:
        for dec in {bucket_length(1 + k, cfg.max_new_tokens, cfg.length_buckets)
                    for k in range(cfg.max_new_tokens)}:
            state = apply(state, Draw([batch_lib.empty_batch(cfg.rows, enc, dec)]))
    order = [True, False] * (args.steps + 1)
    for i, overlap in enumerate(order):
        run_cfg = dataclasses.replace(cfg, overlap=overlap)
        rollout = Rollout(config, tokenizer, run_cfg, timed, critic=critic)
        batch = [prepared[(i * 8 + j) % len(prepared)] for j in range(8)]
        timed.reset()
        timings: dict = {}
        start = time.monotonic()
        judged = rollout.collect(state.params, batch, i, timings)
        t0 = time.monotonic()
        draw = rl_draw(judged, run_cfg, timings)
        t1 = time.monotonic()
        state = apply(state, draw)
        timings["update_step"] = time.monotonic() - t1
        timings["update"] = time.monotonic() - t0
        timings["step"] = time.monotonic() - start
        # The same rollouts' update padded to the full lengths (paired: same load, same
        # rows), outside the step's time.
        full = rl_draw(judged, dataclasses.replace(run_cfg, length_buckets=()), {})
        t1 = time.monotonic()
        state = apply(state, full)
        timings["update_step_full"] = time.monotonic() - t1
        timings["shape"] = draw.batches[0].encoder_input_tokens.shape[1] * 1000 + \
            draw.batches[0].decoder_target_tokens.shape[1]
        timings["execution"] = timed.execution
        if i >= 2:  # the first on/off pair compiles
            rows[overlap].append(timings)
        print(f"  {name} overlap={'on' if overlap else 'off'} step {i}: "
              + ", ".join(f"{k} {v:.2f}" for k, v in timings.items()), file=sys.stderr)
    return {overlap: {k: statistics.median(t[k] for t in ts) for k in ts[0]}
            for overlap, ts in rows.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--configs", default="demo,codet5-small")
    parser.add_argument("--steps", type=int, default=3, help="measured steps per setting")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--actor", default=None, help="trained demo actor (demo config only)")
    parser.add_argument("--critic", default=None, help="its 4-class critic")
    parser.add_argument("--length-buckets", default=None,
                        help="RLConfig.length_buckets, e.g. '0.25,0.5,1' ('' = full padding)")
    args = parser.parse_args()
    args.rl_options = {} if args.length_buckets is None else {"length_buckets": tuple(
        float(x) for x in args.length_buckets.split(",") if x)}

    from coderl_jax.host_memory import retain_freed_memory

    retain_freed_memory()
    from coderl_jax.data import corpus, synthetic, tokenizer as tok_lib
    from coderl_jax.sandbox import Executor

    problems = synthetic.generate_problems("train", 64, 0)
    with tempfile.TemporaryDirectory() as tmp:
        texts = corpus.read_corpus(max_bytes=400_000).texts() + [p.solutions[0] for p in problems]
        tok_lib.save_tokenizer(tok_lib.train_tokenizer(texts, 2048), tmp)
        tokenizer = tok_lib.load_tokenizer(tmp)
    results = {}
    with Executor(args.workers) as executor:
        for name in args.configs.split(","):
            results[name] = run_config(name, args, tokenizer, problems, executor)
    print(f"\nOne online RL step (P=8 problems x K=4 samples + greedy, critic, update), "
          f"median of {args.steps} steps, {args.workers} sandbox workers, "
          f"{os.cpu_count()} CPU cores; seconds:\n")
    print("| config | overlap | sampling | execution (total) | waited | critic | update | "
          "update step | same, full padding | step | waited / step |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, by in results.items():
        for overlap in (True, False):
            t = by[overlap]
            print(f"| {name} | {'on' if overlap else 'off'} | {t['sampling']:.2f} | "
                  f"{t['execution']:.2f} | {t['wait']:.2f} | {t['critic']:.2f} | "
                  f"{t['update']:.2f} | {t['update_step']:.2f} | "
                  f"{t['update_step_full']:.2f} | {t['step']:.2f} | "
                  f"{t['wait'] / t['step']:.1%} |")
        speedup = by[False]["step"] / by[True]["step"]
        print(f"| {name} | on vs off | | | | | | | | {speedup:.2f}x | |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
