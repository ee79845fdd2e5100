"""Byte-level BPE with CodeT5's special-token layout: train, save, reload with transformers."""

import json
import pathlib
import sys

import numpy as np
import pytest

from coderl_jax.data import corpus as C
from coderl_jax.data import objectives as O
from coderl_jax.data import tokenizer as T

sys.path.insert(0, str(pathlib.Path(__file__).parent))

VOCAB_SIZE = 1000


@pytest.fixture(scope="module")
def saved_dir(tmp_path_factory):
    # A small slice of the standard library: trains in about a second.
    texts = C.read_corpus(max_files=15).texts()
    tok = T.train_tokenizer(texts, VOCAB_SIZE)
    return T.save_tokenizer(tok, tmp_path_factory.mktemp("tok"))


@pytest.fixture(scope="module")
def loaded(saved_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(saved_dir))


def test_sentinel_id_rule_matches_codet5():
    # CodeT5 / T5: V = 32100, <extra_id_0> = 32099, <extra_id_99> = 32000.
    assert T.sentinel_id(0, 32100) == 32099
    assert T.sentinel_id(99, 32100) == 32000
    with pytest.raises(ValueError, match="outside"):
        T.sentinel_id(100, 32100)


def test_saved_in_hf_format(saved_dir):
    for name in T.HF_TOKENIZER_FILES:
        assert (saved_dir / name).is_file(), name
    special = json.loads((saved_dir / "special_tokens_map.json").read_text())
    assert (
        special["pad_token"] == "<pad>"
        and special["eos_token"] == "</s>"
        and special["bos_token"] == "<s>"
    )
    assert special["additional_special_tokens"][:2] == ["<extra_id_0>", "<extra_id_1>"]


def test_model_folders_get_the_same_portable_tokenizer_files(loaded, tmp_path):
    # save_model_dir and export_hf write the tokenizer through save_tokenizer: the class is
    # one transformers 4 knows and the legacy special_tokens_map.json is there.
    import jax
    from model_utils import tiny_config

    from coderl_jax import checkpoints
    from coderl_jax.models import hf
    from coderl_jax.models.t5 import init_params

    config = tiny_config(vocab_size=VOCAB_SIZE)
    params = init_params(config, jax.random.key(0))
    ours = checkpoints.save_model_dir(tmp_path / "ours", config, params, tokenizer=loaded)
    hf.export_hf(config, params, tmp_path / "hf", tokenizer=loaded)
    for folder in (ours, tmp_path / "hf"):
        tok_config = json.loads((folder / "tokenizer_config.json").read_text())
        assert tok_config["tokenizer_class"] == "PreTrainedTokenizerFast"
        special = json.loads((folder / "special_tokens_map.json").read_text())
        assert special["eos_token"] == "</s>"
        assert special["additional_special_tokens"][0] == "<extra_id_0>"


def test_a_specific_tokenizer_class_is_kept(loaded, tmp_path):
    loaded.save_pretrained(str(tmp_path / "raw"))
    path = tmp_path / "raw" / "tokenizer_config.json"
    tok_config = json.loads(path.read_text())
    tok_config["tokenizer_class"] = "RobertaTokenizer"  # as in CodeT5's released folders
    path.write_text(json.dumps(tok_config))
    from transformers import AutoTokenizer

    roberta = AutoTokenizer.from_pretrained(str(tmp_path / "raw"))
    out = T.save_tokenizer(roberta, tmp_path / "out")
    assert json.loads((out / "tokenizer_config.json").read_text())["tokenizer_class"] in (
        "RobertaTokenizer", "RobertaTokenizerFast")


def test_reloaded_by_transformers_with_documented_ids(loaded):
    assert len(loaded) == VOCAB_SIZE
    assert (loaded.pad_token_id, loaded.bos_token_id, loaded.eos_token_id) == (0, 1, 2)
    assert (loaded.unk_token_id, loaded.mask_token_id) == (3, 4)
    vocab = loaded.get_vocab()
    assert [vocab[t] for t in T.SPECIAL_TOKENS] == [0, 1, 2, 3, 4]
    assert vocab["<extra_id_0>"] == VOCAB_SIZE - 1
    assert vocab["<extra_id_1>"] == VOCAB_SIZE - 2
    assert vocab["<extra_id_99>"] == VOCAB_SIZE - 100
    assert T.sentinel_ids(loaded)[:3] == [999, 998, 997]
    assert max(vocab.values()) == VOCAB_SIZE - 1 and len(set(vocab.values())) == VOCAB_SIZE
    T.check_layout(loaded)


def test_encoding_convention(loaded):
    text = "def f(x):\n    return x  <mask> + 1\n"
    bare = loaded(text, add_special_tokens=False)["input_ids"]
    framed = loaded(text)["input_ids"]
    assert framed == [1] + bare + [2]  # <s> ... </s>, as CodeT5's RobertaTokenizer
    assert loaded.decode(bare) == text  # exact, whitespace and "<mask>" included
    assert loaded.decode(framed, skip_special_tokens=True) == text.replace("<mask>", "")
    # Every byte is in the vocabulary: nothing maps to <unk>.
    odd = "caf\u00e9 \u2603 \x00\t\r\n"
    assert 3 not in loaded(odd, add_special_tokens=False)["input_ids"]
    assert loaded.decode(loaded(odd, add_special_tokens=False)["input_ids"]) == odd
    # A sentinel in text is one token.
    assert loaded("a<extra_id_0>b", add_special_tokens=False)["input_ids"][1:2] == [999]
    assert T.encode_documents(loaded, [text, "x"]) == [
        bare,
        loaded("x", add_special_tokens=False)["input_ids"],
    ]


def test_msp_with_the_trained_tokenizer(loaded):
    tokens = loaded("return a + b", add_special_tokens=False)["input_ids"]
    mask = np.zeros(len(tokens), bool)
    mask[-1] = True
    ex = O.msp_example_from_mask(tokens, mask, T.sentinel_ids(loaded), loaded.eos_token_id)
    assert loaded.convert_ids_to_tokens(ex["inputs"].tolist())[-2:] == ["<extra_id_0>", "</s>"]
    assert (
        loaded.decode(ex["targets"].tolist())
        == "<extra_id_0>" + loaded.decode(tokens[-1:]) + "</s>"
    )


def test_check_layout_rejects_other_layouts(loaded):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    raw = Tokenizer(
        models.WordLevel({"<unk>": 0, "<pad>": 1, "</s>": 2, "a": 3}, unk_token="<unk>")
    )
    raw.pre_tokenizer = pre_tokenizers.Whitespace()
    other = PreTrainedTokenizerFast(
        tokenizer_object=raw, pad_token="<pad>", eos_token="</s>", unk_token="<unk>"
    )
    with pytest.raises(ValueError, match="<pad> has id 1, expected 0"):
        T.check_layout(other, num_sentinels=0)


def test_too_small_vocab_or_corpus():
    with pytest.raises(ValueError, match="need at least 261"):
        T.train_tokenizer(["x = 1"], 300)
    with pytest.raises(ValueError, match="corpus is too small"):
        T.train_tokenizer(["x = 1\n"], 2000)


def test_supervised_examples_framing_and_counts(loaded):
    from coderl_jax.data import prompts
    from coderl_jax.data.problem import Problem, Test

    solved = Problem(
        task_id="p1",
        question="Print the sum of two integers.",
        example_tests=(Test("stdio", "1 2\n", "3\n"),),
        solutions=(
            "a, b = map(int, input().split())\nprint(a + b)\n",
            "print(sum(map(int, input().split())))\n",
        ),
        source="apps",
    )
    unsolved = Problem(task_id="p2", question="No reference.", source="apps")
    long_one = Problem(task_id="p3", question="Long.", solutions=("x = 1\n" * 200,), source="apps")
    stats = O.SupervisedStats()
    examples = list(
        O.supervised_examples(
            [solved, unsolved, long_one], loaded, max_target_length=64, stats=stats
        )
    )
    assert [e["task_id"] for e in examples] == ["p1", "p1"]
    prompt = prompts.format_prompt(solved)
    assert examples[0]["inputs"].tolist() == loaded(prompt)["input_ids"]  # <s> prompt </s>
    for example, solution in zip(examples, solved.solutions):
        assert example["targets"].tolist() == loaded(solution, add_special_tokens=False)[
            "input_ids"
        ] + [2]
    assert stats.problems == 3 and stats.examples == 2
    assert stats.unsolved == ["p2"]
    assert [(t, i) for t, i, _ in stats.long_targets] == [("p3", 0)] and stats.long_targets[0][
        2
    ] > 64
    bare = list(O.supervised_examples([solved], loaded, add_bos=False))
    assert bare[0]["inputs"].tolist() == loaded(prompt, add_special_tokens=False)["input_ids"] + [2]
    # A prompt budget shortens the statement and keeps the ANSWER marker.
    budget = len(examples[0]["inputs"]) - 4
    short = list(O.supervised_examples([solved], loaded, max_source_length=budget))
    assert len(short[0]["inputs"]) <= budget
    assert loaded.decode(short[0]["inputs"].tolist(), skip_special_tokens=True).endswith(
        prompts.ANSWER_MARKER
    )
