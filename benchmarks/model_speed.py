"""Training-step and sampling throughput: our Flax T5 vs Hugging Face PyTorch T5, same machine.

    python benchmarks/model_speed.py [--configs tiny,codet5-small] [--reps 3] [--rounds 3]
                                     [--dtype float32|bfloat16]

For each config both frameworks get the same shapes (batch 8, source 256, target 128), the
same precision, random weights, and each is timed in a process of its own (see below).
Precision (`--dtype`): float32 everywhere (the default), or bfloat16 mixed precision on both
sides: float32 weights and optimizer, bf16 matmuls (ours: T5Config(dtype="bfloat16"), every
product accumulating in float32; PyTorch: `torch.autocast("cpu", torch.bfloat16)` around the
forward pass and loss, or around `generate`). On CPUs with AMX both run bf16 matmuls on it.

  train:  one optimizer step = forward + backward + AdamW update (dropout on, as in training;
          ours draws its masks with the model's counter-hash `layers.dropout_bits`, PyTorch
          with its Philox generator: same sites and rate).
          Ours: one `jax.jit` with the state donated. PyTorch: model(**batch).loss.backward();
          optimizer.step(); zero_grad(). tokens/s counts source + target tokens per step.
  sample: 8 prompts x 128 new tokens, temperature 0.6, top-p 0.95. Ours: `decoding.sample`
          (one jitted while-loop with KV cache). PyTorch: `generate(do_sample=True, ...)`.
          Both forced to exactly 128 new tokens (min = max = 128, EOS suppressed before), so
          new-tokens/s counts the same work.

Host memory: ours runs with `coderl_jax.host_memory.retain_freed_memory()`, as our mains do
(glibc keeps freed blocks instead of unmapping them; without it every CPU step faults in and
zero-fills its ~0.7-1 GB of XLA buffers again). PyTorch runs with glibc's defaults, as its
users run it; `--peer-retain-memory` gives it the same setting, to show how much of the
margin that setting is (PyTorch gains from it too: tiny step 1.22 -> 1.07 s, measured once).

Warm-up runs (compilation, allocator warm-up; `--warmup`, 3 by default) are excluded. Each
measurement runs in a fresh child process holding one framework only, and the children
alternate (ours, PyTorch, ours, PyTorch, ... for `--rounds` rounds of `--reps` timed runs
each), so that drifting background load hits both alike; each figure is the median of all
its timed runs. The speed-up also shows the lowest and highest of the rounds' own ratios
(one ours child against the PyTorch child right after it): on a shared VM whose speed
drifts 10-30% between minutes, that range is the honest error bar (a low outlier can also
be one of our heap's one-off growth steps, see `coderl_jax.host_memory`, landing in a timed
run). One process per framework because they disturb each other when they share one: a
step that follows the other framework's step is slow (measured, codet5-small training: ours
3.7 s per step after ours, 6.8 s right after a PyTorch step and 4.4 s even after a further
1 s pause; the same with OMP_WAIT_POLICY=PASSIVE, so it is not OpenMP
workers spinning; most likely each framework's allocator finds its memory handed back and
faults it in again). Interleaved in one process that cost ours ~35% and PyTorch ~10% on that
row, and it is not how either is used. Thread counts are left at their defaults (XLA's CPU
thread pool and torch's intra-op pool both use every core); the header records them.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import statistics
import subprocess
import sys
import time

CONFIGS = {
    "tiny": dict(d_model=256, d_kv=64, d_ff=1024, num_layers=4, num_decoder_layers=4,
                 num_heads=4),
    "codet5-small": dict(d_model=512, d_kv=64, d_ff=2048, num_layers=6, num_decoder_layers=6,
                         num_heads=8),
}
COMMON = dict(vocab_size=32100, feed_forward_proj="relu", tie_word_embeddings=True,
              dropout_rate=0.1, pad_token_id=0, eos_token_id=2, decoder_start_token_id=0)


def timed_runs(fn, reps: int, warmup: int) -> list[float]:
    """Wall seconds of `reps` runs of `fn()`, after `warmup` untimed runs."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def make_batch(vocab: int, batch: int, src: int, tgt: int, seed: int = 0):
    import numpy as np

    rng = np.random.default_rng(seed)
    ids = rng.integers(5, vocab, size=(batch, src)).astype(np.int32)
    labels = rng.integers(5, vocab, size=(batch, tgt)).astype(np.int32)
    dec_in = np.concatenate([np.zeros((batch, 1), np.int32), labels[:, :-1]], axis=1)
    mask = np.ones((batch, src), np.int32)
    return ids, mask, dec_in, labels


# -- ours ----------------------------------------------------------------------------------------
def jax_train(config, batch):
    """A function running one jitted, donated train step to completion."""
    import jax
    import optax

    from coderl_jax.models.t5 import T5, init_params

    model = T5(config)
    optimizer = optax.adamw(1e-4, weight_decay=0.01)
    params = init_params(config, jax.random.key(0))
    state = (params, optimizer.init(params), jax.random.key(1))
    ids, mask, dec_in, labels = (jax.numpy.asarray(x) for x in batch)

    def loss_fn(params, rng):
        logits = model.apply({"params": params}, ids, dec_in, mask, deterministic=False,
                             rngs={"dropout": rng})
        return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()

    @functools.partial(jax.jit, donate_argnums=0)
    def step(state):
        params, opt_state, rng = state
        rng, sub = jax.random.split(rng)
        loss, grads = jax.value_and_grad(loss_fn)(params, sub)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), opt_state, rng), loss

    holder = [state]

    def run():
        holder[0], loss = step(holder[0])
        loss.block_until_ready()

    return run


def jax_sample(config, batch, new_tokens):
    """A function sampling `new_tokens` tokens for the batch's prompts."""
    import jax

    from coderl_jax.decoding import SamplingParams, sample
    from coderl_jax.models.t5 import init_params

    params = init_params(config, jax.random.key(0))
    ids, mask, _, _ = batch
    sampling = SamplingParams(temperature=0.6, top_p=0.95, max_new_tokens=new_tokens,
                              min_new_tokens=new_tokens)
    seed = [0]

    def run():
        seed[0] += 1
        out = sample(config, params, ids, mask, jax.random.key(seed[0]), sampling)
        out.tokens.block_until_ready()
        assert int(out.lengths.min()) == new_tokens

    return run


# -- Hugging Face PyTorch ------------------------------------------------------------------------
def torch_model(config):
    import torch
    import transformers

    torch.manual_seed(0)
    return transformers.T5ForConditionalGeneration(transformers.T5Config(**config.to_hf_dict()))


def num_params(model) -> int:
    return sum(p.numel() for p in model.parameters())


def torch_precision(config):
    """The PyTorch counterpart of our compute dtype: fp32, or bf16 autocast (fp32 weights,
    bf16 matmuls), as a context manager."""
    import contextlib

    import torch

    if config.dtype == "bfloat16":
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def torch_train(config, batch):
    import torch

    model = torch_model(config).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.01)
    ids, mask, dec_in, labels = (torch.as_tensor(x, dtype=torch.long) for x in batch)

    def run():
        with torch_precision(config):
            loss = model(input_ids=ids, attention_mask=mask, decoder_input_ids=dec_in,
                         labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    run.num_params = num_params(model)
    return run


def torch_sample(config, batch, new_tokens):
    import torch

    model = torch_model(config).eval()
    ids, mask, _, _ = (torch.as_tensor(x, dtype=torch.long) for x in batch)

    def run():
        with torch.inference_mode(), torch_precision(config):
            out = model.generate(input_ids=ids, attention_mask=mask, do_sample=True,
                                 temperature=0.6, top_p=0.95, top_k=0,
                                 max_new_tokens=new_tokens, min_new_tokens=new_tokens)
        # generate prepends the decoder start token.
        assert out.shape[1] == new_tokens + 1, out.shape

    run.num_params = num_params(model)
    return run


BUILDERS = {("ours", "train"): "jax_train", ("ours", "sample"): "jax_sample",
            ("pytorch", "train"): "torch_train", ("pytorch", "sample"): "torch_sample"}


def child_main(args) -> int:
    """One framework, one config, one task: print {"times": [...], ...} as JSON."""
    from coderl_jax.host_memory import retain_freed_memory

    # Ours runs as our mains run (they call it first thing); PyTorch with its defaults,
    # unless --peer-retain-memory asks for the same malloc setting there too.
    retained = (args.child == "ours" or args.peer_retain_memory) and retain_freed_memory()
    from coderl_jax.models.config import T5Config

    config = T5Config(**{**COMMON, "dropout_rate": args.dropout_rate}, **CONFIGS[args.config],
                      dtype=args.dtype)
    batch = make_batch(config.vocab_size, args.batch, args.source_length, args.target_length)
    builder = globals()[BUILDERS[(args.child, args.task)]]
    run = (builder(config, batch) if args.task == "train"
           else builder(config, batch, args.new_tokens))
    info = {"times": timed_runs(run, args.reps, args.warmup), "retained": bool(retained)}
    if args.child == "ours":
        import jax
        info["version"] = f"jax {jax.__version__} on {jax.devices()[0].platform}"
    else:
        import torch
        info["version"] = (f"torch {torch.__version__}, {torch.get_num_threads()} intra-op "
                           f"threads")
        info["params"] = run.num_params
    print(json.dumps(info))
    return 0


def speedup_range(per_round: list[float]) -> str:
    """' (lo-hi)' over the rounds' own speed-ups: how far the machine's drift moved the
    ratio during the run (empty for one round)."""
    if len(per_round) < 2:
        return ""
    return f" ({min(per_round):.2f}-{max(per_round):.2f})"


def run_child(args, framework: str, config: str, task: str) -> dict:
    """Run one measurement in a fresh interpreter; its JSON result."""
    cmd = [sys.executable, os.path.abspath(__file__), "--child", framework, "--config", config,
           "--task", task, "--reps", str(args.reps), "--warmup", str(args.warmup),
           "--batch", str(args.batch),
           "--source-length", str(args.source_length),
           "--target-length", str(args.target_length), "--new-tokens", str(args.new_tokens),
           "--dropout-rate", str(args.dropout_rate), "--dtype", args.dtype] + (
               ["--peer-retain-memory"] if args.peer_retain_memory else [])
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{framework} {config} {task} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--configs", default=",".join(CONFIGS))
    parser.add_argument("--reps", type=int, default=3, help="timed runs per child process")
    parser.add_argument("--warmup", type=int, default=3,
                        help="untimed runs first in each child (compilation, allocator and "
                             "cache warm-up: the first steps after compiling vary by ~30%%)")
    parser.add_argument("--rounds", type=int, default=3,
                        help="alternating child processes per framework and task")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--source-length", type=int, default=256)
    parser.add_argument("--target-length", type=int, default=128)
    parser.add_argument("--new-tokens", type=int, default=128)
    parser.add_argument("--only", choices=("train", "sample"), default=None)
    parser.add_argument("--dropout-rate", type=float, default=COMMON["dropout_rate"],
                        help="dropout in the training step, both sides (CodeT5 uses 0.1)")
    parser.add_argument("--dtype", choices=("float32", "bfloat16"), default="float32",
                        help="compute dtype, both sides: bfloat16 = our dtype=bfloat16 "
                             "(float32 params) vs PyTorch autocast to bfloat16")
    parser.add_argument("--peer-retain-memory", action="store_true",
                        help="give PyTorch the malloc setting of our mains too "
                             "(coderl_jax.host_memory; ours always runs with it)")
    parser.add_argument("--child", choices=("ours", "pytorch"), help=argparse.SUPPRESS)
    parser.add_argument("--config", choices=tuple(CONFIGS), help=argparse.SUPPRESS)
    parser.add_argument("--task", choices=("train", "sample"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return child_main(args)

    tasks = [t for t in ("train", "sample") if args.only in (None, t)]
    rows, versions, retained = [], {}, {}
    for name in args.configs.split(","):
        cells = {}
        for task in tasks:
            times = {"ours": [], "pytorch": []}
            round_speedups = []  # PyTorch's median time / ours, within one round
            for _ in range(args.rounds):
                medians = {}
                for framework in ("ours", "pytorch"):
                    info = run_child(args, framework, name, task)
                    times[framework] += info["times"]
                    medians[framework] = statistics.median(info["times"])
                    versions[framework] = info["version"]
                    retained[framework] = info["retained"]
                    cells["params"] = info.get("params", cells.get("params"))
                round_speedups.append(medians["pytorch"] / medians["ours"])
            work = args.batch * ((args.source_length + args.target_length) if task == "train"
                                 else args.new_tokens)
            ours, theirs = (work / statistics.median(times[f]) for f in ("ours", "pytorch"))
            cells[task] = [f"{ours:,.0f}", f"{theirs:,.0f}",
                           f"{ours / theirs:.2f}x" + speedup_range(round_speedups)]
        rows.append([name, f"{cells['params'] / 1e6:.1f}M"]
                    + cells.get("train", ["-"] * 3) + cells.get("sample", ["-"] * 3))
        print(f"... {name} done", file=sys.stderr, flush=True)

    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cpus; "
          f"{versions['ours']}; {versions['pytorch']} (defaults); one process per "
          f"framework, alternating")
    print("malloc keeps freed memory (coderl_jax.host_memory): " + ", ".join(
        f"{f} {'yes' if retained.get(f) else 'no'}" for f in ("ours", "pytorch")))
    print(f"batch {args.batch}, source {args.source_length}, target {args.target_length}, "
          f"{args.new_tokens} new tokens (temperature 0.6, top-p 0.95), {args.dtype} compute, "
          f"training dropout {args.dropout_rate}, median of {args.rounds} x {args.reps} "
          f"runs, each child after {args.warmup} warm-up runs; speed-up (lo-hi): the "
          f"lowest and highest of the rounds' own ratios\n")
    print("| config | params | train tok/s ours | train tok/s PyTorch | speed-up "
          "| sample new-tok/s ours | sample new-tok/s PyTorch | speed-up |")
    print("|---|---|---|---|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
