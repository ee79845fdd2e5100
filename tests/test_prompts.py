"""Prompt templates (exact strings) and token truncation that keeps the ANSWER marker."""

import json

import pytest

from coderl_jax.data import prompts
from coderl_jax.data.problem import Problem
from coderl_jax.data.problem import Test as UnitTest


class CharTokenizer:
    """One token per character plus <s> and </s>, like the count a CodeT5 tokenizer reports."""

    def encode(self, text):
        return [1] + [ord(c) for c in text] + [2]


def test_apps_standard_input_prompt():
    problem = Problem(task_id="1", question="Add two numbers.", source="apps")
    assert prompts.format_prompt(problem) == (
        "\nQUESTION:\nAdd two numbers.\nUse Standard Input format\nANSWER:\n"
    )


def test_apps_call_based_prompt_has_starter_code():
    problem = Problem(task_id="2", question="Add.", starter_code="def add(a, b):\n",
                      fn_name="add", source="apps")
    assert prompts.format_prompt(problem) == (
        "\nQUESTION:\nAdd.\ndef add(a, b):\n\nUse Call-Based format\nANSWER:\n"
    )


def test_real_apps_call_based_problem(benchmark_data):
    # APPS train problem 2404 (LeetCode, class Solution starter code), read from the raw file.
    record = next(
        json.loads(line) for line in open(benchmark_data / "apps" / "train.jsonl")
        if json.loads(line)["problem_id"] == 2404
    )
    io = json.loads(record["input_output"])
    problem = Problem(task_id="2404", question=record["question"],
                      starter_code=record["starter_code"], fn_name=io["fn_name"], source="apps")
    text = prompts.format_prompt(problem)
    assert text.startswith("\nQUESTION:\n" + record["question"] + "\nclass Solution:")
    assert text.endswith(record["starter_code"] + "\nUse Call-Based format\nANSWER:\n")


def test_mbpp_prompt_shows_three_asserts():
    asserts = [f"assert f({i}) == {i + 1}" for i in range(4)]
    problem = Problem(task_id="7", question="Write a function f that adds one.",
                      hidden_tests=tuple(UnitTest("assert", a) for a in asserts), source="mbpp")
    assert prompts.format_prompt(problem) == (
        "\nQUESTION:\nWrite a function f that adds one."
        "\nYour code should satisfy these tests:\n"
        "assert f(0) == 1\nassert f(1) == 2\nassert f(2) == 3"
        "\nANSWER:\n"
    )
    with pytest.raises(ValueError, match="no assert tests"):
        prompts.format_prompt(Problem(task_id="8", question="q", source="mbpp"))


def test_humaneval_prompt_is_the_prompt_and_unknown_source_fails():
    text = 'def f(x):\n    """Return x."""\n'
    assert prompts.format_prompt(Problem(task_id="HumanEval/0", question=text,
                                         source="humaneval")) == text
    with pytest.raises(ValueError, match="no prompt template for source 'codeforces'"):
        prompts.format_prompt(Problem(task_id="x", question="q", source="codeforces"))


def test_synthetic_uses_the_apps_template():
    problem = Problem(task_id="s", question="Q", starter_code="def solve(nums):\n",
                      fn_name="solve", source="synthetic")
    assert prompts.format_prompt(problem) == (
        "\nQUESTION:\nQ\ndef solve(nums):\n\nUse Call-Based format\nANSWER:\n"
    )


def test_truncation_cuts_the_statement_and_keeps_starter_and_marker():
    tok = CharTokenizer()
    question = "".join(chr(ord("a") + i % 26) for i in range(500))
    problem = Problem(task_id="1", question=question, starter_code="def f(x):\n",
                      fn_name="f", source="apps")
    full = prompts.format_prompt(problem)
    suffix = "\ndef f(x):\n\nUse Call-Based format\nANSWER:\n"
    max_len = 100
    text = prompts.format_prompt(problem, tok, max_len)
    # Exactly as many characters of the question as fit: 100 tokens - <s> - </s> - markers.
    kept = max_len - 2 - len("\nQUESTION:\n") - len(suffix)
    assert text == "\nQUESTION:\n" + question[:kept] + suffix
    assert len(tok.encode(text)) == max_len
    # A prompt that fits is unchanged.
    assert prompts.format_prompt(problem, tok, len(full) + 2) == full
    # On plain text the suffix starts at the format line: the starter code counts as body.
    text = prompts.truncate_prompt(full, tok, max_len)
    assert text.endswith("\nUse Call-Based format\nANSWER:\n") and len(tok.encode(text)) == max_len
    assert text.startswith("\nQUESTION:\nabc")


def test_truncation_without_marker_keeps_the_end_and_errors_when_impossible():
    tok = CharTokenizer()
    text = "# " + "x" * 50 + "\ndef f(x):\n"
    assert prompts.truncate_prompt(text, tok, 22) == text[-20:]
    humaneval = Problem(task_id="HumanEval/1", question=text, source="humaneval")
    assert prompts.format_prompt(humaneval, tok, 22) == text[-20:]
    with pytest.raises(ValueError, match="max_source_length=10"):
        prompts.truncate_prompt("\nQUESTION:\n" + "q" * 50 + "\nANSWER:\n", tok, 10)


def test_truncation_with_a_real_bpe_tokenizer():
    from coderl_jax.data.tokenizer import train_tokenizer

    tok = train_tokenizer(
        ["def f(x):\n    return x + 1\n"] * 5 + ["Given a list of numbers, print the sum."] * 5,
        vocab_size=300, num_sentinels=4,
    )
    problem = Problem(task_id="1", question="Given a list of numbers, print the sum. " * 40,
                      source="apps")
    for max_len in (50, 57, 120):
        text = prompts.format_prompt(problem, tok, max_len)
        assert len(tok.encode(text)) <= max_len
        assert text.startswith("\nQUESTION:\nGiven")
        assert text.endswith("\nUse Standard Input format\nANSWER:\n")
        # Maximal: one more character of the statement would not fit.
        cut = len(text) - len("\nUse Standard Input format\nANSWER:\n")
        longer = prompts.format_prompt(problem)[: cut + 1] + text[cut:]
        assert len(tok.encode(longer)) > max_len


def test_write_prompts_file(tmp_path):
    problems = [Problem(task_id=str(i), question=f"Q{i}", source="apps") for i in range(3)]
    path = tmp_path / "out" / "prompts.jsonl"
    assert prompts.write_prompts_file(problems, path) == 3
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert lines == [
        {"task_id": str(i), "prompt": f"\nQUESTION:\nQ{i}\nUse Standard Input format\nANSWER:\n"}
        for i in range(3)
    ]
