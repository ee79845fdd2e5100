"""MSP / NTP example builders, the T5 noise mask, and fixed-shape batching."""

import math

import numpy as np
import pytest

from coderl_jax.data import objectives as O

# A tiny deterministic word-level "tokenizer" for a fixed string.
TEXT = "def add ( a , b ) : return a + b"
VOCAB = {
    w: 10 + i for i, w in enumerate(["def", "add", "(", "a", ",", "b", ")", ":", "return", "+"])
}
TOKENS = [VOCAB[w] for w in TEXT.split()]  # [10, 11, 12, 13, 14, 15, 16, 17, 18, 13, 19, 15]
BOS, EOS = 1, 2
SENTINELS = [99, 98, 97, 96, 95, 94, 93, 92]  # <extra_id_0>, <extra_id_1>, ... (T5: top id down)


def test_fixed_string_tokens():
    assert TOKENS == [10, 11, 12, 13, 14, 15, 16, 17, 18, 13, 19, 15]


def test_msp_on_fixed_string_hand_expected():
    # Noise: "add" (span 0) and "return a" (span 1).
    mask = [0, 1, 0, 0, 0, 0, 0, 0, 1, 1, 0, 0]
    ex = O.msp_example_from_mask(TOKENS, mask, SENTINELS, EOS)
    #                      def <S0> (   a   ,   b   )   :  <S1> +   b  </s>
    assert ex["inputs"].tolist() == [10, 99, 12, 13, 14, 15, 16, 17, 98, 19, 15, 2]
    #                     <S0> add <S1> return a </s>
    assert ex["targets"].tolist() == [99, 11, 98, 18, 13, 2]
    assert ex["inputs"].dtype == np.int32 and ex["targets"].dtype == np.int32
    with_bos = O.msp_example_from_mask(TOKENS, mask, SENTINELS, EOS, bos_id=BOS)
    assert with_bos["inputs"].tolist() == [1, 10, 99, 12, 13, 14, 15, 16, 17, 98, 19, 15, 2]
    assert with_bos["targets"].tolist() == ex["targets"].tolist()


def test_msp_adjacent_and_final_spans():
    # Noise spans at the end and spans separated by one kept token keep distinct sentinels.
    mask = [0, 0, 1, 0, 1, 1, 0, 0, 0, 0, 1, 1]
    ex = O.msp_example_from_mask(TOKENS, mask, SENTINELS, EOS)
    assert ex["inputs"].tolist() == [10, 11, 99, 13, 98, 16, 17, 18, 13, 97, 2]
    assert ex["targets"].tolist() == [99, 12, 98, 14, 15, 97, 19, 15, 2]


def test_ntp_on_fixed_string_with_fixed_pivot():
    ex = O.ntp_example(TOKENS, None, EOS, pivot=5)
    assert ex["inputs"].tolist() == [10, 11, 12, 13, 14, 2]  # "def add ( a ," </s>
    assert ex["targets"].tolist() == [15, 16, 17, 18, 13, 19, 15, 2]  # "b ) : return a + b" </s>
    ex = O.ntp_example(TOKENS, None, EOS, bos_id=BOS, pivot=1)
    assert ex["inputs"].tolist() == [1, 10, 2]
    assert ex["targets"].tolist() == TOKENS[1:] + [2]


def test_noise_span_counts_hand_values():
    assert O.noise_span_counts(20) == (3, 1)  # round(3.0), round(1.0)
    assert O.noise_span_counts(100) == (15, 5)
    assert O.noise_span_counts(512) == (77, 26)  # round(76.8), round(25.67)
    assert O.noise_span_counts(2) == (1, 1)  # round(0.3) = 0, clamped to >= 1
    with pytest.raises(ValueError, match=">= 2 tokens"):
        O.noise_span_counts(1)


def test_noise_mask_shape_and_t5_structure():
    for length in (2, 3, 10, 37, 100, 513):
        for seed in range(5):
            mask = O.random_spans_noise_mask(length, np.random.default_rng(seed))
            num_noise, num_spans = O.noise_span_counts(length)
            assert mask.shape == (length,) and mask.dtype == bool
            assert mask.sum() == num_noise
            starts = mask & ~np.concatenate([[False], mask[:-1]])
            assert starts.sum() == num_spans
            assert not mask[0] and mask[-1]  # starts with a kept span, ends with noise


def test_noise_mask_deterministic_under_seed():
    a = O.random_spans_noise_mask(200, np.random.default_rng(7))
    b = O.random_spans_noise_mask(200, np.random.default_rng(7))
    c = O.random_spans_noise_mask(200, np.random.default_rng(8))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    # Pinned stream (numpy PCG64, seed 0): guards reproducibility of saved experiments.
    pinned = O.random_spans_noise_mask(40, np.random.default_rng(0))
    assert np.flatnonzero(pinned).tolist() == [11, 12, 13, 14, 38, 39]


def _span_lengths(mask):
    lengths, run = [], 0
    for m in mask:
        if m:
            run += 1
        elif run:
            lengths.append(run)
            run = 0
    if run:
        lengths.append(run)
    return lengths


def test_noise_density_and_span_length_statistics():
    rng = np.random.default_rng(123)
    total_tokens = total_noise = 0
    spans = []
    for _ in range(400):
        length = int(rng.integers(50, 600))
        mask = O.random_spans_noise_mask(length, rng)
        total_tokens += length
        total_noise += int(mask.sum())
        spans += _span_lengths(mask)
    assert abs(total_noise / total_tokens - 0.15) < 0.002
    assert abs(np.mean(spans) - 3.0) < 0.05


def test_span_lengths_are_a_uniform_composition():
    # 100 tokens: 15 noise tokens in 5 spans. Under a uniform composition of N = 15 into
    # K = 5 positive parts, P(first part = k) = C(N-k-1, K-2) / C(N-1, K-1).
    rng = np.random.default_rng(0)
    draws = 3000
    counts = np.zeros(16)
    for _ in range(draws):
        counts[_span_lengths(O.random_spans_noise_mask(100, rng))[0]] += 1
    # A part is at most N - K + 1 = 11 long.
    expected = np.array(
        [0.0] + [math.comb(15 - k - 1, 3) / math.comb(14, 4) for k in range(1, 12)] + [0.0] * 4
    )
    assert abs(expected.sum() - 1.0) < 1e-12
    total_variation = 0.5 * np.abs(counts / draws - expected).sum()
    assert total_variation < 0.04, (counts / draws, expected)


def _undo_msp(ex, sentinels):
    """Rebuild the original tokens from an MSP example (inverse of the builder)."""
    spans, current = {}, None
    for t in ex["targets"][:-1]:
        if t in sentinels:
            current = t
            spans[current] = []
        else:
            spans[current].append(int(t))
    out = []
    for t in ex["inputs"][:-1]:
        out += spans[t] if t in sentinels else [int(t)]
    return out


def test_msp_example_is_invertible_and_uses_sentinels_in_order():
    rng = np.random.default_rng(3)
    sentinels = list(range(1099, 999, -1))
    for _ in range(50):
        tokens = rng.integers(5, 900, size=int(rng.integers(2, 300))).tolist()
        ex = O.msp_example(tokens, rng, sentinels, EOS)
        assert _undo_msp(ex, sentinels) == tokens
        used = [int(t) for t in ex["inputs"] if t >= 1000]
        assert used == sentinels[: len(used)]  # <extra_id_0>, <extra_id_1>, ... in order
        assert (len(ex["inputs"]), len(ex["targets"])) == O.msp_lengths(len(tokens))


def test_msp_too_many_spans_for_sentinels():
    mask = [0, 1] * 6
    with pytest.raises(ValueError, match="6 noise spans but only 2 sentinels"):
        O.msp_example_from_mask(TOKENS, mask, [99, 98], EOS)
    with pytest.raises(ValueError, match="equal 1-D shapes"):
        O.msp_example_from_mask(TOKENS, mask[:-1], SENTINELS, EOS)


def test_ntp_pivot_range_hand_values():
    assert O.ntp_pivot_range(10) == (1, 9)
    assert O.ntp_pivot_range(30) == (3, 27)  # not 4: 0.1 * 30 == 3.0000000000000004
    assert O.ntp_pivot_range(100) == (10, 90)
    assert O.ntp_pivot_range(2) == (1, 1)
    assert O.ntp_pivot_range(3) == (1, 2)
    with pytest.raises(ValueError, match=">= 2 tokens"):
        O.ntp_pivot_range(1)


def test_ntp_pivot_uniform_in_10_to_90_percent():
    rng = np.random.default_rng(0)
    tokens = list(range(100, 140))  # 40 tokens: pivots 4..36, 33 values
    draws = 6600
    counts = np.zeros(41, dtype=int)
    for _ in range(draws):
        ex = O.ntp_example(tokens, rng, EOS)
        pivot = len(ex["inputs"]) - 1
        assert ex["inputs"][:-1].tolist() + ex["targets"][:-1].tolist() == tokens
        counts[pivot] += 1
    assert counts[:4].sum() == 0 and counts[37:].sum() == 0
    inside = counts[4:37]
    assert inside.min() > 0
    # Chi-square against uniform, 32 degrees of freedom: the 0.999 quantile is about 62.5.
    expected = draws / 33
    assert ((inside - expected) ** 2 / expected).sum() < 62.5


def test_ntp_bad_pivot():
    with pytest.raises(ValueError, match="pivot 12 outside"):
        O.ntp_example(TOKENS, None, EOS, pivot=12)
    with pytest.raises(ValueError, match="needs an rng"):
        O.ntp_example(TOKENS, None, EOS)


@pytest.mark.parametrize("objective", ["msp", "ntp"])
@pytest.mark.parametrize("with_bos", [False, True])
def test_max_chunk_length_fits_exactly(objective, with_bos):
    enc, dec = 40, 12
    chunk = O.max_chunk_length(objective, enc, dec, with_bos=with_bos)
    lengths = O.get_objective(objective).lengths
    for n in range(2, chunk + 1):
        e, d = lengths(n, with_bos)
        assert e <= enc and d <= dec
    e, d = lengths(chunk + 1, with_bos)
    assert e > enc or d > dec
    # And the builders agree with the length functions, for every pivot/mask.
    rng = np.random.default_rng(0)
    for _ in range(30):
        ex = O.get_objective(objective).build(
            list(range(5, 5 + chunk)), rng, SENTINELS, EOS, BOS if with_bos else None
        )
        assert len(ex["inputs"]) <= enc and len(ex["targets"]) <= dec


def test_unknown_objective():
    with pytest.raises(ValueError, match="unknown pretraining objective 'mlm'"):
        O.get_objective("mlm")


def test_pad_batch_layout():
    a = {"inputs": np.array([5, 6, 2], np.int32), "targets": np.array([7, 8, 2], np.int32)}
    b = {"inputs": np.array([9, 2], np.int32), "targets": np.array([2], np.int32)}
    batch = O.pad_batch([a, b], 3, 5, 4)
    assert set(batch) == set(O.BATCH_FEATURES)
    for key, value in batch.items():
        assert value.shape == (3, 5 if key.startswith("encoder") else 4), key
        assert value.dtype == (np.float32 if key == "decoder_loss_weights" else np.int32), key
    assert batch["encoder_input_tokens"].tolist() == [[5, 6, 2, 0, 0], [9, 2, 0, 0, 0], [0] * 5]
    assert batch["encoder_segment_ids"].tolist() == [[1, 1, 1, 0, 0], [1, 1, 0, 0, 0], [0] * 5]
    assert batch["encoder_positions"].tolist() == [[0, 1, 2, 0, 0], [0, 1, 0, 0, 0], [0] * 5]
    assert batch["decoder_target_tokens"].tolist() == [[7, 8, 2, 0], [2, 0, 0, 0], [0] * 4]
    assert batch["decoder_input_tokens"].tolist() == [[0, 7, 8, 0], [0, 0, 0, 0], [0] * 4]
    assert batch["decoder_segment_ids"].tolist() == [[1, 1, 1, 0], [1, 0, 0, 0], [0] * 4]
    assert batch["decoder_loss_weights"].tolist() == [[1, 1, 1, 0], [1, 0, 0, 0], [0] * 4]
    assert batch["decoder_positions"].tolist() == [[0, 1, 2, 0], [0, 0, 0, 0], [0] * 4]


def test_pad_batch_rejects_long_example_naming_it():
    fits = {"inputs": np.array([5, 2], np.int32), "targets": np.array([7, 8, 2], np.int32)}
    too_long = {"inputs": np.array([5, 2], np.int32), "targets": np.array([7, 8, 9, 2], np.int32)}
    with pytest.raises(
        ValueError, match="example 1: targets has 4 tokens, more than the decoder length 3"
    ):
        O.pad_batch([fits, too_long], 2, 4, 3)
    with pytest.raises(ValueError, match="3 examples do not fit a batch of 2 rows"):
        O.pad_batch([fits] * 3, 2, 4, 3)


def _ex(inputs, targets):
    return {"inputs": np.array(inputs, np.int32), "targets": np.array(targets, np.int32)}


def test_pack_examples_hand_case():
    examples = [
        _ex([5, 6, 2], [7, 2]),  # A -> row 0, segment 1
        _ex([8, 2], [9, 10, 2]),  # B -> row 1 (row 0's decoder is too full)
        _ex([11, 2], [12, 2]),  # C -> row 0, segment 2
        _ex([13, 14, 15, 2], [2]),  # D -> row 1, segment 2
        _ex([16, 2], [17, 2]),  # E -> fits no row: next batch
    ]
    first, second = list(O.pack_examples(examples, 2, 6, 4))
    assert first["encoder_input_tokens"].tolist() == [[5, 6, 2, 11, 2, 0], [8, 2, 13, 14, 15, 2]]
    assert first["encoder_segment_ids"].tolist() == [[1, 1, 1, 2, 2, 0], [1, 1, 2, 2, 2, 2]]
    assert first["encoder_positions"].tolist() == [[0, 1, 2, 0, 1, 0], [0, 1, 0, 1, 2, 3]]
    assert first["decoder_target_tokens"].tolist() == [[7, 2, 12, 2], [9, 10, 2, 2]]
    assert first["decoder_input_tokens"].tolist() == [[0, 7, 0, 12], [0, 9, 10, 0]]
    assert first["decoder_segment_ids"].tolist() == [[1, 1, 2, 2], [1, 1, 1, 2]]
    assert first["decoder_positions"].tolist() == [[0, 1, 0, 1], [0, 1, 2, 0]]
    assert first["decoder_loss_weights"].tolist() == [[1, 1, 1, 1], [1, 1, 1, 1]]
    assert second["encoder_input_tokens"].tolist() == [[16, 2, 0, 0, 0, 0], [0] * 6]
    assert second["decoder_input_tokens"].tolist() == [[0, 17, 0, 0], [0] * 4]
    assert second["decoder_loss_weights"].tolist() == [[1, 1, 0, 0], [0] * 4]


def _docs():
    rng = np.random.default_rng(5)
    return [rng.integers(5, 90, size=n).tolist() for n in (1, 3, 17, 60, 250, 41)]


@pytest.mark.parametrize("objective", ["msp", "ntp"])
@pytest.mark.parametrize("pack", [False, True])
def test_pretrain_batches_fixed_shapes_and_deterministic(objective, pack):
    kwargs = {
        "batch_size": 3,
        "encoder_length": 32,
        "decoder_length": 16,
        "sentinel_ids": SENTINELS,
        "eos_id": EOS,
        "pack": pack,
    }
    stats = O.ExampleStats()
    batches = list(
        O.pretrain_batches(_docs(), objective, seed=0, num_epochs=2, stats=stats, **kwargs)
    )
    assert len(batches) > 2
    for batch in batches:
        for key, value in batch.items():
            assert value.shape == (3, 32 if key.startswith("encoder") else 16), key
    again = list(O.pretrain_batches(_docs(), objective, seed=0, num_epochs=2, **kwargs))
    for x, y in zip(batches, again, strict=True):
        for key in x:
            np.testing.assert_array_equal(x[key], y[key])
    other = list(O.pretrain_batches(_docs(), objective, seed=1, num_epochs=2, **kwargs))
    assert any(
        not np.array_equal(x["encoder_input_tokens"], y["encoder_input_tokens"])
        for x, y in zip(batches, other)
    )
    # Resuming from a data position gives the same stream as skipping in the full one.
    resumed = list(
        O.pretrain_batches(_docs(), objective, seed=0, num_epochs=2, start_batch=2, **kwargs)
    )
    assert len(resumed) == len(batches) - 2
    np.testing.assert_array_equal(
        resumed[0]["decoder_target_tokens"], batches[2]["decoder_target_tokens"]
    )
    # Every example lands in the batches exactly once: count EOS-terminated targets.
    assert stats.short_windows == 2 and stats.short_window_tokens == 2  # the 1-token doc, twice
    loss_tokens = sum(int(b["decoder_loss_weights"].sum()) for b in batches)
    assert sum(int((b["decoder_target_tokens"] == EOS).sum()) for b in batches) == stats.examples
    assert loss_tokens > 0


def test_pretrain_examples_ntp_covers_every_token():
    docs = _docs()
    chunk = O.max_chunk_length("ntp", 32, 16)
    examples = list(
        O.pretrain_examples(
            docs, "ntp", chunk, seed=0, sentinel_ids=SENTINELS, eos_id=EOS, shuffle=False
        )
    )
    rebuilt = [
        t for ex in examples for t in ex["inputs"][:-1].tolist() + ex["targets"][:-1].tolist()
    ]
    # Only the 1-token document (a window too short for any example) is missing.
    assert rebuilt == [t for doc in docs[1:] for t in doc]


def test_pretrain_examples_no_documents():
    with pytest.raises(ValueError, match="no documents"):
        next(O.pretrain_examples([], "msp", 10, seed=0, sentinel_ids=SENTINELS, eos_id=EOS))
