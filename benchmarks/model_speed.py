"""Training-step and sampling throughput: our Flax T5 vs Hugging Face PyTorch T5, same machine.

    python benchmarks/model_speed.py [--configs tiny,codet5-small] [--reps 5]

For each config both frameworks get the same shapes (batch 8, source 256, target 128), fp32
everywhere, random weights, and are timed in this one process:

  train:  one optimizer step = forward + backward + AdamW update (dropout on, as in training;
          ours draws its masks with the model's counter-hash `layers.dropout_bits`, PyTorch
          with its Philox generator: same sites and rate).
          Ours: one `jax.jit` with the state donated. PyTorch: model(**batch).loss.backward();
          optimizer.step(); zero_grad(). tokens/s counts source + target tokens per step.
  sample: 8 prompts x 128 new tokens, temperature 0.6, top-p 0.95. Ours: `decoding.sample`
          (one jitted while-loop with KV cache). PyTorch: `generate(do_sample=True, ...)`.
          Both forced to exactly 128 new tokens (min = max = 128, EOS suppressed before), so
          new-tokens/s counts the same work.

Warm-up runs (compilation, allocator warm-up) are excluded; each figure is the median of
`--reps` timed runs, ours and PyTorch interleaved so background load hits both alike. Thread counts are left at their defaults for both (XLA's CPU thread pool
and torch's intra-op pool both use every core); the table header records them.
"""

from __future__ import annotations

import argparse
import functools
import os
import platform
import statistics
import time

CONFIGS = {
    "tiny": dict(d_model=256, d_kv=64, d_ff=1024, num_layers=4, num_decoder_layers=4,
                 num_heads=4),
    "codet5-small": dict(d_model=512, d_kv=64, d_ff=2048, num_layers=6, num_decoder_layers=6,
                         num_heads=8),
}
COMMON = dict(vocab_size=32100, feed_forward_proj="relu", tie_word_embeddings=True,
              dropout_rate=0.1, pad_token_id=0, eos_token_id=2, decoder_start_token_id=0)


def median_times(fns, reps: int, warmup: int = 1) -> list[float]:
    """Median wall time of each `fn()` over `reps` runs, after `warmup` untimed runs of each.

    The functions are timed interleaved (a, b, a, b, ...) so that load from other processes
    on a shared machine hits both sides alike.
    """
    for fn in fns:
        for _ in range(warmup):
            fn()
    times = [[] for _ in fns]
    for _ in range(reps):
        for fn, ts in zip(fns, times):
            start = time.perf_counter()
            fn()
            ts.append(time.perf_counter() - start)
    return [statistics.median(ts) for ts in times]


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


def torch_train(config, batch):
    import torch

    model = torch_model(config).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.01)
    ids, mask, dec_in, labels = (torch.as_tensor(x, dtype=torch.long) for x in batch)

    def run():
        loss = model(input_ids=ids, attention_mask=mask, decoder_input_ids=dec_in,
                     labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return run


def torch_sample(config, batch, new_tokens):
    import torch

    model = torch_model(config).eval()
    ids, mask, _, _ = (torch.as_tensor(x, dtype=torch.long) for x in batch)

    def run():
        with torch.inference_mode():
            out = model.generate(input_ids=ids, attention_mask=mask, do_sample=True,
                                 temperature=0.6, top_p=0.95, top_k=0,
                                 max_new_tokens=new_tokens, min_new_tokens=new_tokens)
        # generate prepends the decoder start token.
        assert out.shape[1] == new_tokens + 1, out.shape

    return run


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--configs", default=",".join(CONFIGS))
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--source-length", type=int, default=256)
    parser.add_argument("--target-length", type=int, default=128)
    parser.add_argument("--new-tokens", type=int, default=128)
    parser.add_argument("--only", choices=("train", "sample"), default=None)
    parser.add_argument("--dropout-rate", type=float, default=COMMON["dropout_rate"],
                        help="dropout in the training step, both sides (CodeT5 uses 0.1)")
    args = parser.parse_args(argv)

    import jax
    import torch

    from coderl_jax.models.config import T5Config

    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cpus; "
          f"jax {jax.__version__} on {jax.devices()[0].platform} ({jax.device_count()} device); "
          f"torch {torch.__version__}, {torch.get_num_threads()} intra-op threads (defaults)")
    print(f"batch {args.batch}, source {args.source_length}, target {args.target_length}, "
          f"{args.new_tokens} new tokens (temperature 0.6, top-p 0.95), fp32, "
          f"training dropout {args.dropout_rate}, "
          f"median of {args.reps} after warm-up\n")
    print("| config | params | train tok/s ours | train tok/s PyTorch | speed-up "
          "| sample new-tok/s ours | sample new-tok/s PyTorch | speed-up |")
    print("|---|---|---|---|---|---|---|---|")
    for name in args.configs.split(","):
        config = T5Config(**{**COMMON, "dropout_rate": args.dropout_rate}, **CONFIGS[name])
        batch = make_batch(config.vocab_size, args.batch, args.source_length,
                           args.target_length)
        n_params = sum(p.numel() for p in torch_model(config).parameters())
        train_tokens = args.batch * (args.source_length + args.target_length)
        new_tokens = args.batch * args.new_tokens
        cells = [name, f"{n_params / 1e6:.1f}M"]
        if args.only in (None, "train"):
            ours, theirs = (train_tokens / t for t in median_times(
                [jax_train(config, batch), torch_train(config, batch)], args.reps))
            cells += [f"{ours:,.0f}", f"{theirs:,.0f}", f"{ours / theirs:.2f}x"]
        else:
            cells += ["-"] * 3
        if args.only in (None, "sample"):
            ours, theirs = (new_tokens / t for t in median_times(
                [jax_sample(config, batch, args.new_tokens),
                 torch_sample(config, batch, args.new_tokens)], args.reps))
            cells += [f"{ours:,.0f}", f"{theirs:,.0f}", f"{ours / theirs:.2f}x"]
        else:
            cells += ["-"] * 3
        print("| " + " | ".join(cells) + " |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
