"""seqio tasks (optional extra): their examples equal the numpy builders' output."""

import numpy as np
import pytest

seqio = pytest.importorskip("seqio")

from coderl_jax.data import corpus as C
from coderl_jax.data import loaders, prompts, synthetic
from coderl_jax.data import objectives as O
from coderl_jax.data import seqio_tasks as S
from coderl_jax.data import tokenizer as T

ENC, DEC = 48, 40


@pytest.fixture(scope="module")
def setup(tmp_path_factory, benchmark_data):
    tok = T.train_tokenizer(C.read_corpus(max_files=15).texts(), 1000)
    tok_dir = str(T.save_tokenizer(tok, tmp_path_factory.mktemp("tok")))
    mbpp = str(benchmark_data / "mbpp" / "mbpp.jsonl")
    apps = str(benchmark_data / "apps" / "train.jsonl")
    names = S.register_tasks(
        tok_dir,
        apps_splits={"train": apps},
        mbpp_splits={"train": mbpp},
        synthetic_num_problems={"train": 3, "test": 2},
        corpus_max_files=2,
        pretrain_encoder_length=ENC,
        pretrain_decoder_length=DEC,
        seed=5,
        num_epochs=1,
    )
    return {
        "tok": T.load_tokenizer(tok_dir),
        "dir": tok_dir,
        "mbpp": mbpp,
        "apps": apps,
        "names": names,
    }


def _examples(name, split="train", limit=None):
    ds = seqio.get_mixture_or_task(name).get_dataset(
        split=split, shuffle=False, sequence_length=None
    )
    if limit is not None:
        ds = ds.take(limit)
    return list(ds.as_numpy_iterator())


def _assert_same(seqio_examples, numpy_examples, keys=("inputs", "targets")):
    assert len(seqio_examples) == len(numpy_examples) > 0
    for got, want in zip(seqio_examples, numpy_examples):
        for key in keys:
            np.testing.assert_array_equal(got[key], want[key])


def test_all_tasks_registered(setup):
    assert setup["names"] == S.TASK_NAMES
    for name in S.TASK_NAMES:
        assert name in seqio.TaskRegistry.names()


def test_synthetic_task_equals_numpy_builder(setup):
    tok = setup["tok"]
    for split, count in (("train", 3), ("test", 2)):
        want = list(
            O.supervised_examples(
                synthetic.generate_problems(split, count, 0),
                tok,
                max_source_length=600,
                max_target_length=512,
            )
        )
        got = _examples("coderl_synthetic", split)
        _assert_same(got, want)
        assert [g["task_id"].decode() for g in got] == [w["task_id"] for w in want]


def test_mbpp_and_apps_tasks_equal_numpy_builder(setup):
    tok = setup["tok"]
    problems = loaders.load_problems("mbpp", setup["mbpp"])[:2]
    want = list(O.supervised_examples(problems, tok, max_source_length=600, max_target_length=512))
    _assert_same(_examples("coderl_mbpp", limit=len(want)), want)
    # CodeT5 framing: the inputs are exactly tokenizer(prompt).
    assert (
        want[0]["inputs"].tolist() == tok(prompts.format_prompt(problems[0], tok, 600))["input_ids"]
    )
    assert want[0]["targets"].tolist() == tok(problems[0].solutions[0], add_special_tokens=False)[
        "input_ids"
    ] + [2]
    apps = loaders.load_problems("apps", setup["apps"])[:1]
    want = list(O.supervised_examples(apps, tok, max_source_length=600, max_target_length=512))
    _assert_same(_examples("coderl_apps", limit=len(want)), want)


@pytest.mark.parametrize("objective", ["msp", "ntp"])
def test_pretrain_tasks_equal_numpy_builder(setup, objective):
    tok = setup["tok"]
    docs = T.encode_documents(tok, C.read_corpus(max_files=2).texts())
    chunk = O.max_chunk_length(objective, ENC, DEC, with_bos=True)
    want = list(
        O.pretrain_examples(
            docs,
            objective,
            chunk,
            seed=5,
            sentinel_ids=T.sentinel_ids(tok),
            eos_id=2,
            bos_id=1,
            num_epochs=1,
        )
    )
    got = _examples(f"coderl_pretrain_{objective}")
    _assert_same(got, want)
    assert all(len(g["inputs"]) <= ENC and len(g["targets"]) <= DEC for g in got)


def test_feature_converter_packs_to_fixed_shapes(setup):
    ds = seqio.get_mixture_or_task("coderl_pretrain_msp").get_dataset(
        split="train", shuffle=False, sequence_length={"inputs": ENC, "targets": DEC}
    )
    converted = seqio.EncDecFeatureConverter(pack=True)(ds, {"inputs": ENC, "targets": DEC})
    batch = next(converted.as_numpy_iterator())
    assert batch["encoder_input_tokens"].shape == (ENC,)
    assert batch["decoder_target_tokens"].shape == (DEC,)
    assert batch["encoder_segment_ids"].max() >= 1


def test_vocabulary(setup):
    tok = setup["tok"]
    vocab = S.make_vocabulary(setup["dir"])
    assert vocab.vocab_size == len(tok) == 1000
    assert (vocab.pad_id, vocab.eos_id, vocab.unk_id) == (0, 2, 3)
    text = "def f(x):\n    return x + 1\n"
    ids = vocab.encode(text)
    assert ids == tok(text, add_special_tokens=False)["input_ids"]
    assert vocab.decode(ids + [2, 77]) == text  # stops at EOS
    assert vocab.decode([999] + ids[:2]) == "<extra_id_0>" + tok.decode(ids[:2])  # sentinels kept
    import tensorflow as tf

    assert vocab.encode_tf(tf.constant(text)).numpy().tolist() == ids
    assert vocab.decode_tf(tf.constant([ids + [2]], tf.int32)).numpy().tolist() == [text.encode()]
    assert vocab == S.make_vocabulary(setup["dir"])


def test_unknown_split(setup):
    with pytest.raises(ValueError, match="unknown split 'validation'"):
        _examples("coderl_pretrain_msp", split="validation")
