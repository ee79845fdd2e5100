"""The embedded synthetic benchmark: determinism, disjoint splits, and references that pass."""

import collections

import pytest

from coderl_jax.data import prompts, synthetic
from coderl_jax.data.example_tests import extract_example_tests
from coderl_jax.outcomes import PASSED_TEST


@pytest.fixture(scope="module")
def default_splits():
    return {split: synthetic.generate_problems(split) for split in synthetic.SPLITS}


def test_deterministic_under_a_seed():
    a = synthetic.generate_problems("train", 30, seed=7)
    assert a == synthetic.generate_problems("train", 30, seed=7)
    assert a != synthetic.generate_problems("train", 30, seed=8)
    # Problems are drawn one after another from one seeded stream: more problems, same prefix.
    assert synthetic.generate_problems("train", 40, seed=7)[:30] == a


def test_splits_are_disjoint_by_composition_and_program(default_splits):
    train, test = default_splits["train"], default_splits["test"]
    for depth in range(1, synthetic.MAX_DEPTH + 1):
        assert not set(synthetic.compositions("train", depth)) & set(
            synthetic.compositions("test", depth))
    train_programs = {s for p in train for s in p.solutions}
    assert not train_programs & {s for p in test for s in p.solutions}
    # Not even the same function in other words: no train and test compositions agree on
    # all the probe inputs.
    def functions(split):
        depths = range(1, synthetic.MAX_DEPTH + 1)
        return {synthetic._signature(c) for d in depths for c in synthetic.compositions(split, d)}

    assert not functions("train") & functions("test")


def test_problem_shape(default_splits):
    for split, problems in default_splits.items():
        assert len(problems) == synthetic.DEFAULT_NUM_PROBLEMS[split]
        assert len({p.task_id for p in problems}) == len(problems)
        levels = collections.Counter(p.difficulty for p in problems)
        assert set(levels) == {"level1", "level2", "level3"}
        assert max(levels.values()) - min(levels.values()) <= 1
        kinds = collections.Counter(p.hidden_tests[0].kind for p in problems)
        assert set(kinds) == {"stdio", "call"}
        for p in problems:
            assert p.source == "synthetic" and len(p.solutions) == 1
            assert len(p.hidden_tests) >= 8 and len(p.example_tests) == 2
            # The examples are written into the statement in the APPS layout.
            assert extract_example_tests(p.question, p.fn_name) == p.example_tests
            assert ("-----Examples-----") in p.question
            prompt = prompts.format_prompt(p)
            assert prompt.startswith("\nQUESTION:\n") and prompt.endswith("\nANSWER:\n")
            if p.fn_name:
                assert p.starter_code and p.solutions[0].startswith(p.starter_code)


def test_edge_cases_are_hidden_tests():
    list_problem = next(p for p in synthetic.generate_problems("test", 30)
                        if p.fn_name and isinstance(p.hidden_tests[0].input[0], list))
    inputs = [t.input[0] for t in list_problem.hidden_tests]
    assert [] in inputs and [7] in inputs and [-3, -8, -1] in inputs


def test_hand_checked_problem():
    ops = ("keep_even", "sum")
    problem = synthetic.make_problem("x", ops, call_based=False,
                                     rng=__import__("random").Random(0))
    assert problem.difficulty == "level2" and problem.fn_name is None
    assert problem.solutions[0] == (
        "nums = list(map(int, input().split()))\n"
        "nums = [x for x in nums if x % 2 == 0]\n"
        "result = sum(nums)\n"
        "print(result)\n"
    )
    tests = {t.input: t.expected for t in problem.hidden_tests}
    assert tests["\n"] == "0\n" and tests["2 2 5 2\n"] == "6\n" and tests["-3 -8 -1\n"] == "-8\n"
    assert "1. Keep only the even numbers.\n2. Compute the sum of the numbers." in problem.question


def test_save_and_load_round_trip(tmp_path):
    problems = synthetic.generate_problems("test", 12)
    path = tmp_path / "synthetic.jsonl"
    synthetic.save_problems(problems, path)
    assert synthetic.load_problems(path) == problems
    assert synthetic.load_problems(None) == synthetic.generate_problems("test")
    path.write_text(path.read_text() + '{"task_id": "y", "question": "q", "colour": 1}\n')
    with pytest.raises(ValueError, match=r"synthetic.jsonl:13: .*colour"):
        synthetic.load_problems(path)


def test_bad_arguments():
    with pytest.raises(ValueError, match="unknown split"):
        synthetic.generate_problems("validation", 3)
    with pytest.raises(ValueError, match="depth"):
        synthetic.compositions("train", 4)


def test_all_references_pass_hidden_and_example_tests_in_the_sandbox(default_splits):
    from coderl_jax.sandbox import Executor

    problems = default_splits["train"] + default_splits["test"]
    jobs = [(p, p.solutions[0]) for p in problems]
    with Executor(num_workers=2, timeout=4.0) as executor:
        hidden = executor.run(jobs, tests="hidden")
        example = executor.run(jobs, tests="example")
        # The control, which must fail: a problem's hidden tests against the reference of the
        # problem 3 places later (same level, another composition or format).
        pairs = [(p, q) for p, q in zip(problems, problems[3:]) if p.solutions != q.solutions]
        wrong = executor.run([(p, q.solutions[0]) for p, q in pairs[:100]])
    failed = [(p.task_id, v) for p, v in zip(problems, hidden) if v.outcome != PASSED_TEST]
    assert not failed
    assert all(len(v.test_results) == len(p.hidden_tests) for p, v in zip(problems, hidden))
    failed = [(p.task_id, v) for p, v in zip(problems, example) if v.outcome != PASSED_TEST]
    assert not failed
    assert len(wrong) == 100 and not any(v.outcome == PASSED_TEST for v in wrong)
