"""The jitted T5 sampler (coderl_jax/models/t5_sampling.py, through coderl_jax/decoding.py) against naive references on a tiny T5.

References are step-by-step loops over the *full* teacher-forced forward pass (no cache), so
every test also checks that the cached while-loop computes what the model means.
The tiny model is the v1.1 variant: its random init gives varied greedy outputs, whereas the
random v1.0 head repeats one token, which would make the equalities below weak.
"""

import dataclasses
import functools
import pathlib
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

sys.path.insert(0, str(pathlib.Path(__file__).parent))
from model_utils import random_batch, tiny_config, v11  # noqa: E402

from coderl_jax import decoding, nucleus  # noqa: E402
from coderl_jax.decoding import SamplingParams, sample  # noqa: E402
from coderl_jax.models import t5_sampling  # noqa: E402
from coderl_jax.nucleus import top_p_mask  # noqa: E402
from coderl_jax.models.t5 import T5, init_params  # noqa: E402

MAX_NEW = 10


@pytest.fixture(scope="module")
def setup():
    config = v11(tiny_config())
    params = init_params(config, jax.random.key(0))
    ids, mask, _ = random_batch(config, np.random.default_rng(0), batch=3, src_len=11)
    return config, params, ids, mask.astype(np.int32)


@functools.partial(jax.jit, static_argnums=0)
def _forward(config, params, ids, mask, dec, temperature=1.0):
    logits = T5(config).apply({"params": params}, ids, dec, mask)
    return jax.nn.log_softmax(logits / temperature)


def full_forward_log_probs(config, params, ids, mask, dec, temperature=1.0):
    """log-softmax of the teacher-forced logits / temperature: dec [B, T] -> [B, T, V]."""
    return np.asarray(_forward(config, params, ids, mask, dec, temperature), np.float64)


def naive_greedy(config, params, ids, mask, steps, prefix=None):
    """Argmax one token at a time over the full forward pass, forcing `prefix` rows first.

    The decoder input always has `steps` positions (later ones are placeholders): the
    decoder is causal, so the logits at position t see only positions <= t, and one compiled
    forward serves every step. Returns tokens [B, steps] (no EOS handling: the caller makes
    sure EOS does not occur)."""
    b = ids.shape[0]
    dec = np.full((b, steps), config.decoder_start_token_id, np.int32)
    out = np.zeros((b, steps), np.int32)
    for t in range(steps):
        nxt = full_forward_log_probs(config, params, ids, mask, dec)[:, t].argmax(-1)
        if prefix is not None:
            nxt = np.array([p[t] if t < len(p) else n for p, n in zip(prefix, nxt)])
        out[:, t] = nxt
        if t + 1 < steps:
            dec[:, t + 1] = nxt
    return out


def test_greedy_equals_naive_argmax_over_full_forward(setup):
    config, params, ids, mask = setup
    out = sample(config, params, ids, mask, jax.random.key(0),
                 SamplingParams(greedy=True, max_new_tokens=MAX_NEW))
    expected = naive_greedy(config, params, ids, mask, MAX_NEW)
    assert config.eos_token_id not in expected  # so no row stops early in either
    np.testing.assert_array_equal(np.asarray(out.tokens), expected)
    np.testing.assert_array_equal(np.asarray(out.lengths), [MAX_NEW] * 3)
    assert len(set(expected.ravel().tolist())) > 5  # a varied output, not one repeated token
    # log_probs are the model's log-probabilities of the chosen tokens.
    dec = np.concatenate([np.zeros((3, 1), np.int32), expected[:, :-1]], axis=1)
    lp = full_forward_log_probs(config, params, ids, mask, dec)
    expected_lp = np.take_along_axis(lp, expected[..., None], -1)[..., 0]
    np.testing.assert_allclose(np.asarray(out.log_probs), expected_lp, atol=1e-5)


def test_top_p_to_zero_equals_greedy(setup):
    config, params, ids, mask = setup
    greedy = sample(config, params, ids, mask, jax.random.key(0),
                    SamplingParams(greedy=True, max_new_tokens=MAX_NEW))
    narrow = sample(config, params, ids, mask, jax.random.key(5),
                    SamplingParams(temperature=1.0, top_p=1e-6, max_new_tokens=MAX_NEW))
    np.testing.assert_array_equal(np.asarray(narrow.tokens), np.asarray(greedy.tokens))


def test_top_p_mask_hand_computed():
    probs = np.array([[0.05, 0.5, 0.15, 0.3]])
    lp = jnp.log(jnp.asarray(probs, jnp.float32))
    kept = lambda p: np.isfinite(np.asarray(top_p_mask(lp, jnp.float32(p))))[0].tolist()
    assert kept(0.4) == [False, True, False, False]   # 0.5 alone reaches 0.4
    assert kept(0.6) == [False, True, False, True]    # 0.5 + 0.3
    assert kept(0.9) == [False, True, True, True]     # 0.5 + 0.3 + 0.15 = 0.95
    assert kept(0.99) == [True, True, True, True]
    assert kept(0.0) == [False, True, False, False]   # never empty: argmax stays
    np.testing.assert_array_equal(np.asarray(top_p_mask(lp, jnp.float32(0.6)))[0, [1, 3]],
                                  np.asarray(lp)[0, [1, 3]])  # kept values unchanged


def test_top_p_fast_path_equals_exact_search():
    # Peaked rows (nucleus within the top-k candidates) and flat rows (beyond them) in one
    # batch: every row's nucleus equals the exact bisection threshold, and a row's result
    # is the same alone as in the mixed batch.
    rng = np.random.default_rng(0)
    scale = np.array([15.0, 0.5, 8.0, 0.2, 4.0, 1.0])[:, None]
    logits = rng.normal(size=(6, 1000)) * scale
    lp = jax.nn.log_softmax(jnp.asarray(logits, jnp.float32))
    top = jax.lax.top_k(jnp.exp(lp), nucleus.NUCLEUS_CANDIDATES)[0].sum(-1)
    assert 0 < int((top >= 0.9).sum()) < 6  # both paths are exercised
    for p in (0.5, 0.9, 0.95):
        masked = np.asarray(top_p_mask(lp, jnp.float32(p)))
        probs = jnp.exp(lp)  # XLA's exp, as inside top_p_mask (numpy's differs in the last ulp)
        tau = np.asarray(nucleus._nucleus_threshold_bisect(probs, jnp.float32(p)))
        np.testing.assert_array_equal(np.isfinite(masked), np.asarray(probs) >= tau[:, None])
        for row in (0, 1):  # a peaked row and a flat row, alone
            alone = np.asarray(top_p_mask(lp[row:row + 1], jnp.float32(p)))
            np.testing.assert_array_equal(alone, masked[row:row + 1])
        # The kept set is the smallest prefix of the sorted probabilities reaching p.
        for row in range(6):
            probs = np.sort(np.exp(np.asarray(lp[row], np.float64)))[::-1]
            n = int(np.isfinite(masked[row]).sum())
            assert probs[:n].sum() >= p - 1e-5 and probs[: n - 1].sum() < p + 1e-5


def _reference_bisect(probs, top_p):
    """The original search: 32 halvings of [0, bits(max p) + 1], reading probs and bits."""
    bits = jax.lax.bitcast_convert_type(probs, jnp.int32)

    def halve(_, bounds):
        lo, hi = bounds
        mid = lo + (hi - lo) // 2
        ok = jnp.sum(jnp.where(bits >= mid[:, None], probs, 0.0), axis=-1) >= top_p
        return jnp.where(ok, mid, lo), jnp.where(ok, hi, mid)

    lo = jnp.zeros(bits.shape[:1], jnp.int32)
    lo, _ = jax.lax.fori_loop(0, 32, halve, (lo, jnp.max(bits, axis=-1) + 1))
    return jax.lax.bitcast_convert_type(lo, jnp.float32)


def test_nucleus_bisect_equals_reference_search():
    # The early-stopping search from the smallest probability keeps exactly the tokens the
    # fixed 32-halving search from 0 keeps (same threshold unless it keeps every token),
    # for flat, peaked, tied and underflowing rows.
    rng = np.random.default_rng(1)
    scale = np.array([0.2, 1.0, 1.67, 4.0, 8.0, 15.0, 60.0, 0.0])[:, None]
    logits = rng.normal(size=(8, 32100)) * scale
    logits[6, :5] = 40.0  # ties at the top, the rest underflows to 0
    probs = jnp.exp(jax.nn.log_softmax(jnp.asarray(logits, jnp.float32)))
    new = jax.jit(nucleus._nucleus_threshold_bisect)
    ref = jax.jit(_reference_bisect)
    for p in (0.1, 0.5, 0.9, 0.95, 0.999, 0.9999999):
        a = np.asarray(new(probs, jnp.float32(p)))
        b = np.asarray(ref(probs, jnp.float32(p)))
        pr = np.asarray(probs)
        np.testing.assert_array_equal(pr >= a[:, None], pr >= b[:, None])
        same_tau = (a == b) | (pr >= b[:, None]).all(-1)
        assert same_tau.all(), (p, a, b)


def test_sample_categorical_matches_the_distribution():
    # 300 entries span three 128-token CDF blocks; some are excluded (-inf).
    rng = np.random.default_rng(0)
    logits = rng.normal(size=300) * 2
    logits[[0, 5, 127, 128, 299]] = -np.inf
    probs = np.exp(logits - logits[np.isfinite(logits)].max())
    probs /= probs.sum()
    n = 50_000
    keys = jax.random.split(jax.random.key(0), n)
    draws = np.asarray(nucleus.sample_categorical(
        keys, jnp.broadcast_to(jnp.asarray(logits, jnp.float32), (n, 300))))
    counts = np.bincount(draws, minlength=300)
    assert counts[[0, 5, 127, 128, 299]].sum() == 0
    # Every frequency within 5 standard deviations of its expectation.
    sd = np.sqrt(n * probs * (1 - probs))
    assert np.all(np.abs(counts - n * probs) <= 5 * sd + 1)
    # The top-p support is respected too: only the two most likely tokens of [0.05, 0.5,
    # 0.15, 0.3] survive top_p=0.6, in proportion 5:3.
    lp = jnp.log(jnp.asarray([0.05, 0.5, 0.15, 0.3], jnp.float32))
    masked = top_p_mask(jnp.broadcast_to(lp, (20_000, 4)), jnp.float32(0.6))
    counts = np.bincount(np.asarray(nucleus.sample_categorical(keys[:20_000], masked)),
                         minlength=4)
    assert counts[0] == counts[2] == 0
    assert abs(counts[1] / 20_000 - 0.625) < 0.02


def test_temperature_sampling_is_deterministic_and_batch_independent(setup):
    config, params, ids, mask = setup
    # The random tiny model is peaked (p(argmax) ~ 0.97): a high temperature makes samples vary.
    sp = SamplingParams(num_samples=2, temperature=2.0, top_p=0.95, max_new_tokens=MAX_NEW)
    a = sample(config, params, ids, mask, jax.random.key(7), sp)
    b = sample(config, params, ids, mask, jax.random.key(7), sp)
    c = sample(config, params, ids, mask, jax.random.key(8), sp)
    np.testing.assert_array_equal(np.asarray(a.tokens), np.asarray(b.tokens))
    assert not np.array_equal(np.asarray(a.tokens), np.asarray(c.tokens))
    # The 2 samples of one prompt differ (each row has its own key).
    assert not np.array_equal(np.asarray(a.tokens)[0], np.asarray(a.tokens)[1])
    # Row r is seeded by sample id r: prompt 1 alone, with ids 2 and 3, gives the same samples.
    alone = sample(config, params, ids[1:2], mask[1:2], jax.random.key(7), sp,
                   sample_ids=np.array([2, 3]))
    np.testing.assert_array_equal(np.asarray(alone.tokens), np.asarray(a.tokens)[2:4])
    # Sampled tokens' log_probs are those of the tempered full forward pass.
    toks = np.asarray(a.tokens)
    dec = np.concatenate([np.zeros((6, 1), np.int32), toks[:, :-1]], axis=1)
    lp = full_forward_log_probs(config, params, np.repeat(ids, 2, 0), np.repeat(mask, 2, 0), dec,
                                2.0)
    expected = np.take_along_axis(lp, toks[..., None], -1)[..., 0]
    valid = np.arange(MAX_NEW)[None] < np.asarray(a.lengths)[:, None]
    np.testing.assert_allclose(np.asarray(a.log_probs)[valid], expected[valid], atol=1e-5)


def test_prefix_is_forced_then_greedy_continues(setup):
    config, params, ids, mask = setup
    rng = np.random.default_rng(1)
    prefix_len = np.array([0, 3, 5])
    prefix_ids = rng.integers(3, config.vocab_size, size=(3, 5)).astype(np.int32)
    out = sample(config, params, ids, mask, jax.random.key(0),
                 SamplingParams(greedy=True, max_new_tokens=MAX_NEW),
                 prefix_ids=prefix_ids, prefix_len=prefix_len)
    tokens = np.asarray(out.tokens)
    for row, n in enumerate(prefix_len):
        np.testing.assert_array_equal(tokens[row, :n], prefix_ids[row, :n])
    prefixes = [prefix_ids[r, :n].tolist() for r, n in enumerate(prefix_len)]
    expected = naive_greedy(config, params, ids, mask, MAX_NEW, prefix=prefixes)
    np.testing.assert_array_equal(tokens, expected)
    # Prefix forcing also works while sampling: the prefix is reproduced exactly.
    sampled = sample(config, params, ids, mask, jax.random.key(3),
                     SamplingParams(num_samples=2, temperature=2.0, max_new_tokens=MAX_NEW),
                     prefix_ids=prefix_ids, prefix_len=prefix_len)
    st = np.asarray(sampled.tokens)
    for row, n in enumerate(prefix_len):
        for k in range(2):
            np.testing.assert_array_equal(st[row * 2 + k, :n], prefix_ids[row, :n])


def test_prefix_longer_than_max_new_tokens_is_an_error(setup):
    config, params, ids, mask = setup
    with pytest.raises(ValueError, match="does not fit max_new_tokens"):
        sample(config, params, ids, mask, jax.random.key(0),
               SamplingParams(greedy=True, max_new_tokens=2),
               prefix_ids=np.ones((3, 3), np.int32), prefix_len=np.array([0, 3, 1]))


def test_eos_stops_the_row_and_pads_after_it(setup):
    config, params, ids, mask = setup
    sp = SamplingParams(greedy=True, max_new_tokens=MAX_NEW)
    free = np.asarray(sample(config, params, ids, mask, jax.random.key(0), sp).tokens)
    assert config.eos_token_id not in free
    # Declare the first token that row 0 emits for the first time at position >= 2 to be EOS:
    # the rows are unchanged up to their first EOS (the config's EOS id does not enter the
    # forward pass), and padded after it.
    k = next(t for t in range(2, MAX_NEW) if free[0, t] not in free[0, :t])
    eos = int(free[0, k])
    out = sample(config.replace(eos_token_id=eos), params, ids, mask, jax.random.key(0), sp)
    tokens, lengths = np.asarray(out.tokens), np.asarray(out.lengths)
    assert lengths[0] == k + 1
    for row in range(free.shape[0]):
        hits = np.flatnonzero(free[row] == eos)
        n = hits[0] + 1 if hits.size else MAX_NEW
        assert lengths[row] == n
        np.testing.assert_array_equal(tokens[row, :n], free[row, :n])
        assert (tokens[row, n:] == config.pad_token_id).all()
        assert (np.asarray(out.log_probs)[row, n:] == 0).all()


def test_one_compile_per_shape_bucket(setup):
    config, params, _, _ = setup
    sp = SamplingParams(greedy=True, max_new_tokens=7)  # a key no other test uses
    key = (1, 7, True)
    t5_sampling.TRACE_COUNTS[key] = 0
    rng = np.random.default_rng(2)
    # Batches 3 and 4 share the batch bucket 4; source lengths 9..16 share the bucket 16.
    for batch, src_len in [(3, 9), (4, 11), (3, 16), (4, 13)]:
        ids, mask, _ = random_batch(config, rng, batch=batch, src_len=src_len)
        out = sample(config, params, ids, mask, jax.random.key(0), sp)
        assert out.tokens.shape == (batch, 7)
    assert t5_sampling.TRACE_COUNTS[key] == 1
    # Temperature and top-p are traced values: changing them reuses the sampling compile.
    t5_sampling.TRACE_COUNTS[(1, 7, False)] = 0
    for t, p in [(0.5, 0.9), (1.3, 0.5)]:
        ids, mask, _ = random_batch(config, rng, batch=2, src_len=12)
        sample(config, params, ids, mask, jax.random.key(0),
               SamplingParams(temperature=t, top_p=p, max_new_tokens=7))
    assert t5_sampling.TRACE_COUNTS[(1, 7, False)] == 1
    # A longer source moves to the next bucket: one more compile.
    ids, mask, _ = random_batch(config, rng, batch=3, src_len=17)
    sample(config, params, ids, mask, jax.random.key(0), sp)
    assert t5_sampling.TRACE_COUNTS[key] == 2


def test_bucket():
    assert [decoding.bucket(n) for n in (1, 2, 3, 4, 5, 16, 17)] == [1, 2, 4, 4, 8, 16, 32]
    assert decoding.bucket(3, minimum=16) == 16


def test_bad_sampling_params():
    with pytest.raises(ValueError, match="top_p"):
        SamplingParams(top_p=0.0)
    with pytest.raises(ValueError, match="temperature"):
        SamplingParams(temperature=0.0)
    with pytest.raises(ValueError, match="num_samples"):
        SamplingParams(num_samples=0)


# ---------------------------------------------------------------- decode_ids / decode_texts
# The pad -> sample -> trim paths that generation.py and critic_sampling.py each wrote out
# before `decode_chunks` replaced them, kept here as the references the wrapper must equal.

def _old_generation_path(config, params, prompts, rng, sp, batch_size):
    """generation.generate_samples' loop: chunks in order, each padded to batch_size, sample
    ids i * N + k, rows trimmed at their length."""
    n, out = sp.num_samples, []
    for start in range(0, len(prompts), batch_size):
        idx = range(start, min(start + batch_size, len(prompts)))
        rows = [prompts[i] for i in idx]
        width = max(len(r) for r in rows)
        ids = np.full((len(rows), width), config.pad_token_id, np.int32)
        mask = np.zeros((len(rows), width), np.int32)
        for j, r in enumerate(rows):
            ids[j, :len(r)] = r
            mask[j, :len(r)] = 1
        sample_ids = np.asarray([i * n + k for i in idx for k in range(n)], np.int32)
        res = sample(config, params, ids, mask, rng, sp, sample_ids=sample_ids,
                     pad_batch_to=batch_size)
        tokens, lengths = np.asarray(res.tokens), np.asarray(res.lengths)
        out += [[tokens[j * n + k, :lengths[j * n + k]].tolist() for k in range(n)]
                for j in range(len(rows))]
    return out


def _old_critic_sampling_rows(config, params, prompts, prefixes, sample_ids, sp, rng,
                              rows_per_call):
    """critic_sampling._sample_rows: one sample per row, rows sorted by prompt length,
    prefixes padded to max_new_tokens, calls padded to rows_per_call."""
    one = dataclasses.replace(sp, num_samples=1)
    width = sp.max_new_tokens
    order = sorted(range(len(prompts)), key=lambda r: len(prompts[r]))
    out = [None] * len(prompts)
    for start in range(0, len(order), rows_per_call):
        rows = order[start:start + rows_per_call]
        src = max(len(prompts[r]) for r in rows)
        ids = np.full((len(rows), src), config.pad_token_id, np.int32)
        mask = np.zeros((len(rows), src), np.int32)
        prefix_ids = np.full((len(rows), width), config.pad_token_id, np.int32)
        prefix_len = np.zeros((len(rows),), np.int32)
        for j, r in enumerate(rows):
            ids[j, :len(prompts[r])] = prompts[r]
            mask[j, :len(prompts[r])] = 1
            prefix_ids[j, :len(prefixes[r])] = prefixes[r]
            prefix_len[j] = len(prefixes[r])
        res = sample(config, params, ids, mask, rng, one, prefix_ids=prefix_ids,
                     prefix_len=prefix_len, sample_ids=[sample_ids[r] for r in rows],
                     pad_batch_to=rows_per_call)
        tokens, lengths = np.asarray(res.tokens), np.asarray(res.lengths)
        for j, r in enumerate(rows):
            out[r] = tokens[j, :lengths[j]].tolist()
    return out


def _prompts(config, lengths, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.integers(3, config.vocab_size, size=n).tolist() for n in lengths]


def test_decode_ids_equals_the_old_generation_path(setup):
    config, params, _, _ = setup
    prompts = _prompts(config, [5, 9, 3, 12, 7])
    sp = SamplingParams(num_samples=2, temperature=2.0, top_p=0.95, max_new_tokens=MAX_NEW)
    rng = jax.random.key(11)
    expected = _old_generation_path(config, params, prompts, rng, sp, batch_size=2)
    chunks = list(decoding.decode_chunks(config, params, prompts, rng, sp, chunk=2))
    assert [idx for idx, _ in chunks] == [[0, 1], [2, 3], [4]]
    assert [rows for _, c in chunks for rows in c] == expected
    assert decoding.decode_ids(config, params, prompts, rng, sp, chunk=2) == expected
    # Seeded by global sample ids: the chunk size does not change a sample.
    assert decoding.decode_ids(config, params, prompts, rng, sp, chunk=4) == expected
    assert decoding.decode_ids(config, params, prompts, rng, sp) == expected


def test_decode_ids_with_prefixes_equals_the_old_critic_sampling_path(setup):
    config, params, _, _ = setup
    prompts = _prompts(config, [8, 3, 11, 5, 6, 2], seed=1)
    prefixes = [p[:n] for p, n in zip(_prompts(config, [4] * 6, seed=2), [0, 2, 4, 1, 0, 3])]
    sample_ids = [7, 3, 12, 0, 5, 9]
    sp = SamplingParams(num_samples=3, temperature=2.0, top_p=0.9, max_new_tokens=MAX_NEW)
    rng = jax.random.key(4)
    expected = _old_critic_sampling_rows(config, params, prompts, prefixes, sample_ids, sp,
                                         rng, rows_per_call=4)
    one = dataclasses.replace(sp, num_samples=1)
    got = decoding.decode_ids(config, params, prompts, rng, one, prefixes=prefixes,
                              sample_ids=sample_ids, chunk=4, sort_by_length=True)
    assert [rows[0] for rows in got] == expected
    for rows, prefix in zip(got, prefixes):
        assert rows[0][:len(prefix)] == prefix


def test_decode_texts_decodes_each_chunk_once(setup):
    config, params, _, _ = setup

    class Tokenizer:
        def decode(self, ids, skip_special_tokens):
            assert skip_special_tokens
            return " ".join(map(str, ids))

    prompts = _prompts(config, [4, 6, 5])
    sp = SamplingParams(greedy=True, max_new_tokens=MAX_NEW)
    seen = []
    texts = decoding.decode_texts(config, params, Tokenizer(), prompts, jax.random.key(0), sp,
                                  chunk=2, on_chunk=lambda idx, t: seen.append((idx, t)))
    ids = decoding.decode_ids(config, params, prompts, jax.random.key(0), sp)
    assert texts == [[" ".join(map(str, rows[0]))] for rows in ids]
    assert seen == [([0, 1], texts[:2]), ([2], texts[2:])]


def test_decode_wrapper_bad_arguments(setup):
    config, params, _, _ = setup
    sp = SamplingParams(num_samples=2, max_new_tokens=MAX_NEW)
    prompts = _prompts(config, [3, 4])
    with pytest.raises(ValueError, match="sample_ids must hold 4"):
        decoding.decode_ids(config, params, prompts, jax.random.key(0), sp, sample_ids=[0, 1])
    with pytest.raises(ValueError, match="one list per prompt"):
        decoding.decode_ids(config, params, prompts, jax.random.key(0), sp, prefixes=[[1]])
    assert decoding.decode_ids(config, params, [], jax.random.key(0), sp) == []


def test_decode_ids_equals_the_rl_sampler_path(setup):
    """The RL sampler as it was (rl/learner.py at 4d30b6b, its own pad/sample/trim): per
    chunk of problems a greedy baseline, then K samples seeded by global ids."""
    config, params, _, _ = setup
    prompts = _prompts(config, [6, 4, 9, 5, 7], seed=3)
    chunk, k = 2, 2
    greedy = SamplingParams(greedy=True, max_new_tokens=MAX_NEW)
    sampled = SamplingParams(num_samples=k, temperature=1.5, top_p=0.95, max_new_tokens=MAX_NEW)
    rng = jax.random.key(9)
    baselines, samples = [], []
    for start in range(0, len(prompts), chunk):
        idx = list(range(start, min(start + chunk, len(prompts))))
        width = max(len(prompts[i]) for i in idx)
        ids = np.full((len(idx), width), config.pad_token_id, np.int32)
        mask = np.zeros((len(idx), width), np.int32)
        for j, i in enumerate(idx):
            ids[j, :len(prompts[i])], mask[j, :len(prompts[i])] = prompts[i], 1
        out = sample(config, params, ids, mask, rng, greedy, pad_batch_to=chunk)
        baselines += [np.asarray(out.tokens)[j, :int(out.lengths[j])].tolist()
                      for j in range(len(idx))]
        out = sample(config, params, ids, mask, jax.random.fold_in(rng, 1), sampled,
                     sample_ids=np.asarray([i * k + s for i in idx for s in range(k)]),
                     pad_batch_to=chunk)
        rows = [np.asarray(out.tokens)[r, :int(out.lengths[r])].tolist()
                for r in range(len(idx) * k)]
        samples += [rows[j * k:(j + 1) * k] for j in range(len(idx))]
    got = decoding.decode_ids(config, params, prompts, rng, greedy, chunk=chunk)
    assert [rows[0] for rows in got] == baselines
    assert decoding.decode_ids(config, params, prompts, jax.random.fold_in(rng, 1), sampled,
                               chunk=chunk) == samples
