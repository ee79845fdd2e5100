"""Decoder-only train step and sampling: our Flax families vs Hugging Face PyTorch, same machine.

    python benchmarks/model_speed_decoder.py [--configs gpt2-small,qwen2-0.5b] [--tiny]
        [--dtype bfloat16|float32] [--reps 3] [--warmup 2] [--rounds 2]

Rows: GPT-2-small (124M) and the Qwen2/Qwen2.5-0.5B shape (494M: GQA 14/2, SwiGLU, tied
head), random weights. `--tiny` swaps in tiny shapes of both so the script runs on a CPU in
a minute (a smoke test of the script, not a measurement).

  train:  one optimizer step (forward + backward + AdamW) on a pair batch: batch 8, prompt
          256 + program 256 tokens, cross-entropy on the program tokens only. Ours:
          `DecoderFamily.target_logits` in one jit with the state donated (only program
          positions go through the LM head). PyTorch: `model(input_ids, labels=...)` with the
          prompt's labels -100, `loss.backward()`, `optimizer.step()`.
  sample: 8 prompts of 256 tokens, 128 new tokens at temperature 0.6, top-p 0.95, EOS
          suppressed so both produce exactly 128. Ours: `models/decoder/sampling.sample`
          (prefill + one jitted while-loop over the KV cache). PyTorch: `generate`.

Precision: bf16 by default on both sides (ours: DecoderConfig(dtype="bfloat16"), float32
params and optimizer, bf16 matmuls accumulating in float32; PyTorch: float32 weights under
`torch.autocast(device, bfloat16)`). Device: the default JAX device; PyTorch uses CUDA when
available. Each (framework, row, task) runs in a fresh child process, the frameworks
alternating over `--rounds` rounds (they slow each other down when they share a process);
warm-up runs (compilation) are excluded and each figure is the median of its timed runs.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import statistics
import subprocess
import sys
import time

CONFIGS = {
    "gpt2-small": dict(family="gpt2", vocab_size=50257, d_model=768, num_layers=12,
                       num_heads=12, max_position_embeddings=1024, eos_token_id=50256),
    "qwen2-0.5b": dict(family="qwen2", vocab_size=151936, d_model=896, d_ff=4864,
                       num_layers=24, num_heads=14, num_kv_heads=2,
                       max_position_embeddings=32768, rope_theta=1e6,
                       layer_norm_epsilon=1e-6, eos_token_id=151643),
}
TINY = {
    "gpt2-small": dict(family="gpt2", vocab_size=512, d_model=64, num_layers=2, num_heads=4,
                       max_position_embeddings=1024, eos_token_id=2),
    "qwen2-0.5b": dict(family="qwen2", vocab_size=512, d_model=64, d_ff=128, num_layers=2,
                       num_heads=4, num_kv_heads=2, max_position_embeddings=1024,
                       eos_token_id=2),
}


def timed_runs(fn, reps: int, warmup: int) -> list[float]:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def make_pair_batch(vocab: int, batch: int, prompt: int, program: int, seed: int = 0):
    import numpy as np

    rng = np.random.default_rng(seed)
    return (rng.integers(5, vocab, (batch, prompt)).astype(np.int32),
            rng.integers(5, vocab, (batch, program)).astype(np.int32))


# -- ours ----------------------------------------------------------------------------------------
def jax_train(config, batch):
    import flax.struct
    import jax
    import jax.numpy as jnp
    import optax

    from coderl_jax.models.family import DecoderFamily

    @flax.struct.dataclass
    class Pair:
        encoder_input_tokens: jax.Array
        encoder_mask: jax.Array
        decoder_input_tokens: jax.Array
        decoder_target_tokens: jax.Array
        decoder_mask: jax.Array

    family = DecoderFamily(config)
    prompt, program = (jnp.asarray(x) for x in batch)
    pair = Pair(prompt, jnp.ones_like(prompt), program, program, jnp.ones_like(program))
    optimizer = optax.adamw(1e-4, weight_decay=0.01)
    params = family.init(jax.random.key(0))
    state = (params, optimizer.init(params))

    def loss_fn(params):
        logits = family.target_logits(params, pair)
        return optax.softmax_cross_entropy_with_integer_labels(logits, program).mean()

    @functools.partial(jax.jit, donate_argnums=0)
    def step(state):
        params, opt_state = state
        loss, grads = jax.value_and_grad(loss_fn)(params)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), opt_state), loss

    holder = [state]

    def run():
        holder[0], loss = step(holder[0])
        loss.block_until_ready()

    run.num_params = sum(x.size for x in jax.tree.leaves(params))
    return run


def jax_sample(config, batch, new_tokens):
    import jax
    import numpy as np

    from coderl_jax.decoding import SamplingParams
    from coderl_jax.models.decoder.model import init_params
    from coderl_jax.models.decoder.sampling import sample

    params = init_params(config, jax.random.key(0))
    prompt = batch[0]
    sampling = SamplingParams(temperature=0.6, top_p=0.95, max_new_tokens=new_tokens,
                              min_new_tokens=new_tokens)
    seed = [0]

    def run():
        seed[0] += 1
        out = sample(config, params, prompt, np.ones_like(prompt), jax.random.key(seed[0]),
                     sampling, min_source_bucket=prompt.shape[1])
        out.tokens.block_until_ready()
        assert int(out.lengths.min()) == new_tokens

    run.num_params = sum(x.size for x in jax.tree.leaves(params))
    return run


# -- Hugging Face PyTorch ------------------------------------------------------------------------
def _torch_device():
    import torch
    return "cuda" if torch.cuda.is_available() else "cpu"


def torch_model(config):
    import torch
    import transformers

    torch.manual_seed(0)
    hf_config = transformers.AutoConfig.for_model(**config.to_hf_dict())
    model = transformers.AutoModelForCausalLM.from_config(hf_config)
    return model.to(_torch_device())


def torch_precision(config):
    import contextlib

    import torch

    if config.dtype == "bfloat16":
        return torch.autocast(_torch_device(), dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _sync():
    import torch
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def torch_train(config, batch):
    import torch

    model = torch_model(config).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.01)
    prompt, program = (torch.as_tensor(x, dtype=torch.long, device=_torch_device())
                       for x in batch)
    ids = torch.cat([prompt, program], 1)
    labels = torch.cat([torch.full_like(prompt, -100), program], 1)

    def run():
        with torch_precision(config):
            loss = model(input_ids=ids, labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        _sync()

    run.num_params = sum(p.numel() for p in model.parameters())
    return run


def torch_sample(config, batch, new_tokens):
    import torch

    model = torch_model(config).eval()
    prompt = torch.as_tensor(batch[0], dtype=torch.long, device=_torch_device())

    def run():
        with torch.inference_mode(), torch_precision(config):
            out = model.generate(input_ids=prompt, attention_mask=torch.ones_like(prompt),
                                 do_sample=True, temperature=0.6, top_p=0.95, top_k=0,
                                 max_new_tokens=new_tokens, min_new_tokens=new_tokens,
                                 pad_token_id=config.pad_id)
        _sync()
        assert out.shape[1] == prompt.shape[1] + new_tokens, out.shape

    run.num_params = sum(p.numel() for p in model.parameters())
    return run


BUILDERS = {("ours", "train"): jax_train, ("ours", "sample"): jax_sample,
            ("pytorch", "train"): torch_train, ("pytorch", "sample"): torch_sample}


def child_main(args) -> int:
    from coderl_jax.models.decoder.config import DecoderConfig

    shapes = (TINY if args.tiny else CONFIGS)[args.config]
    config = DecoderConfig(**shapes, dtype=args.dtype)
    batch = make_pair_batch(config.vocab_size, args.batch, args.prompt_length,
                            args.program_length)
    builder = BUILDERS[(args.child, args.task)]
    run = builder(config, batch) if args.task == "train" else builder(config, batch,
                                                                       args.new_tokens)
    info = {"times": timed_runs(run, args.reps, args.warmup), "params": int(run.num_params)}
    if args.child == "ours":
        import jax
        info["version"] = f"jax {jax.__version__} on {jax.devices()[0].device_kind}"
    else:
        import torch
        info["version"] = f"torch {torch.__version__} on {_torch_device()}"
    print(json.dumps(info))
    return 0


def run_child(args, framework: str, config: str, task: str) -> dict:
    cmd = [sys.executable, os.path.abspath(__file__), "--child", framework, "--config", config,
           "--task", task, "--reps", str(args.reps), "--warmup", str(args.warmup),
           "--batch", str(args.batch), "--prompt-length", str(args.prompt_length),
           "--program-length", str(args.program_length), "--new-tokens", str(args.new_tokens),
           "--dtype", args.dtype] + (["--tiny"] if args.tiny else [])
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{framework} {config} {task} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--configs", default=",".join(CONFIGS))
    parser.add_argument("--tasks", default="train,sample")
    parser.add_argument("--tiny", action="store_true", help="tiny shapes (CPU smoke run)")
    parser.add_argument("--dtype", default="bfloat16", choices=("bfloat16", "float32"))
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--prompt-length", type=int, default=256)
    parser.add_argument("--program-length", type=int, default=256)
    parser.add_argument("--new-tokens", type=int, default=128)
    parser.add_argument("--child", choices=("ours", "pytorch"), help=argparse.SUPPRESS)
    parser.add_argument("--config", help=argparse.SUPPRESS)
    parser.add_argument("--task", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return child_main(args)
    if args.tiny:
        args.prompt_length, args.program_length, args.new_tokens = 32, 32, 16
        args.reps, args.warmup, args.rounds = 1, 1, 1
    print(f"# decoder-only model speed, {args.dtype}, batch {args.batch}, prompt "
          f"{args.prompt_length} + program {args.program_length} (train), "
          f"{args.new_tokens} new tokens (sample){', TINY shapes' if args.tiny else ''}")
    print("| row | task | params | ours | HF PyTorch | ours / PyTorch speed |")
    print("|---|---|---|---|---|---|")
    for config in args.configs.split(","):
        for task in args.tasks.split(","):
            times = {"ours": [], "pytorch": []}
            for _ in range(args.rounds):
                for framework in ("ours", "pytorch"):
                    info = run_child(args, framework, config, task)
                    times[framework] += info["times"]
                    times[framework + "_info"] = info
            ours, theirs = statistics.median(times["ours"]), statistics.median(times["pytorch"])
            work = (args.batch * (args.prompt_length + args.program_length) if task == "train"
                    else args.batch * args.new_tokens)
            unit = "tok/s" if task == "train" else "new tok/s"
            print(f"| {config} | {task} | {times['ours_info']['params'] / 1e6:.1f}M "
                  f"| {ours:.3f} s ({work / ours:,.0f} {unit}) "
                  f"| {theirs:.3f} s ({work / theirs:,.0f} {unit}) | {theirs / ours:.2f}x |")
    print(f"# ours: {times['ours_info']['version']}; PyTorch: {times['pytorch_info']['version']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
