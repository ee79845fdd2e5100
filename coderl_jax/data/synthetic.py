"""The embedded synthetic benchmark: APPS-like problems a tiny model can learn on a CPU.

Each problem is a composition of 1 to 3 operations on a list of integers or on a string of
words, optionally followed by operations on the resulting integer, e.g.

    reverse the list -> keep only the even numbers -> compute the sum of the numbers

in one of two APPS formats: standard input ("stdio" tests; read a line, print the result) or
call-based ("call" tests on `solve(...)`, with starter code). Every problem has an English
statement with two examples in the APPS `-----Examples-----` layout (so
`coderl_jax.data.example_tests` extracts them like for real APPS), ten hidden tests including
edge cases (empty input, one element, negatives, zeros, repeats), and a short reference solution
that spells out one line per operation, so the statement -> program mapping is learnable.

difficulty is "level1"/"level2"/"level3" by composition depth.

Train and test splits are disjoint by construction: the space of operation *compositions* is
partitioned by a hash of the operation names, so no composition (hence no reference program)
of one split occurs in the other (the hash is over what a composition computes, so not even
an equivalent one does); the test split measures generalization to new compositions of known
operations. Compositions that are degenerate (constant output, or an operation that
changes nothing, such as `abs` before `square`) are left out of both.

Expected outputs are computed by plain Python functions, independently of the reference code;
tests/test_synthetic.py runs every reference against its tests in the sandbox.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import itertools
import json
import pathlib
import random
import string
from typing import Any, Callable, Iterable

from coderl_jax.data.problem import Problem, Test

SPLITS: tuple[str, ...] = ("train", "test")
DEFAULT_NUM_PROBLEMS: dict[str, int] = {"train": 600, "test": 120}
DEFAULT_SEED = 0
MAX_DEPTH = 3
# One composition in TEST_FRACTION_DENOMINATOR goes to the test split.
TEST_FRACTION_DENOMINATOR = 5
NUM_HIDDEN_TESTS = 10
NUM_EXAMPLE_TESTS = 2
FN_NAME = "solve"

# Value types, the variable holding each in the reference code, and its English name.
VARIABLE = {"list": "nums", "str": "s", "int": "result"}
NOUN = {"list": "list", "str": "string", "int": "number"}


@dataclasses.dataclass(frozen=True)
class Op:
    """One operation: its English step, its line of reference code and its Python semantics."""

    name: str
    in_type: str
    out_type: str
    phrase: str
    code: str  # one statement; {i} / {o} are the input / output variable names
    fn: Callable[[Any], Any]


def _op(name, in_type, out_type, phrase, code, fn) -> Op:
    return Op(name, in_type, out_type, phrase, code, fn)


VOWELS = "aeiou"

OPS: tuple[Op, ...] = (
    # list -> list
    _op("reverse", "list", "list", "reverse the list", "{o} = {i}[::-1]", lambda v: v[::-1]),
    _op("sort", "list", "list", "sort the list in increasing order", "{o} = sorted({i})",
        sorted),
    _op("sort_desc", "list", "list", "sort the list in decreasing order",
        "{o} = sorted({i}, reverse=True)", lambda v: sorted(v, reverse=True)),
    _op("keep_even", "list", "list", "keep only the even numbers",
        "{o} = [x for x in {i} if x % 2 == 0]", lambda v: [x for x in v if x % 2 == 0]),
    _op("keep_odd", "list", "list", "keep only the odd numbers",
        "{o} = [x for x in {i} if x % 2 != 0]", lambda v: [x for x in v if x % 2 != 0]),
    _op("keep_positive", "list", "list", "keep only the positive numbers",
        "{o} = [x for x in {i} if x > 0]", lambda v: [x for x in v if x > 0]),
    _op("square", "list", "list", "replace every number by its square",
        "{o} = [x * x for x in {i}]", lambda v: [x * x for x in v]),
    _op("double", "list", "list", "multiply every number by 2",
        "{o} = [2 * x for x in {i}]", lambda v: [2 * x for x in v]),
    _op("increment", "list", "list", "add 1 to every number",
        "{o} = [x + 1 for x in {i}]", lambda v: [x + 1 for x in v]),
    _op("negate", "list", "list", "replace every number by its negation",
        "{o} = [-x for x in {i}]", lambda v: [-x for x in v]),
    _op("absolute", "list", "list", "replace every number by its absolute value",
        "{o} = [abs(x) for x in {i}]", lambda v: [abs(x) for x in v]),
    _op("unique", "list", "list",
        "remove repeated numbers, keeping the first occurrence of each",
        "{o} = list(dict.fromkeys({i}))", lambda v: list(dict.fromkeys(v))),
    _op("drop_first", "list", "list", "remove the first number (if there is one)",
        "{o} = {i}[1:]", lambda v: v[1:]),
    # list -> int
    _op("sum", "list", "int", "compute the sum of the numbers", "{o} = sum({i})", sum),
    _op("length", "list", "int", "count the numbers", "{o} = len({i})", len),
    _op("max", "list", "int", "take the largest number (0 if the list is empty)",
        "{o} = max({i}, default=0)", lambda v: max(v, default=0)),
    _op("min", "list", "int", "take the smallest number (0 if the list is empty)",
        "{o} = min({i}, default=0)", lambda v: min(v, default=0)),
    _op("count_even", "list", "int", "count the even numbers",
        "{o} = sum(1 for x in {i} if x % 2 == 0)", lambda v: sum(1 for x in v if x % 2 == 0)),
    # int -> int
    _op("times2", "int", "int", "multiply the number by 2", "{o} = {i} * 2", lambda n: n * 2),
    _op("abs", "int", "int", "take the absolute value of the number", "{o} = abs({i})", abs),
    _op("mod10", "int", "int", "take the number modulo 10 (a value from 0 to 9)",
        "{o} = {i} % 10", lambda n: n % 10),
    _op("square_int", "int", "int", "square the number", "{o} = {i} * {i}", lambda n: n * n),
    # str -> str
    _op("str_reverse", "str", "str", "reverse the string", "{o} = {i}[::-1]", lambda s: s[::-1]),
    _op("upper", "str", "str", "convert the string to upper case", "{o} = {i}.upper()",
        str.upper),
    # Vowels are masked rather than removed: removal would leave stray spaces ("a b" -> " b")
    # that whitespace-lenient output comparison and the examples' layout would blur.
    _op("mask_vowels", "str", "str", "replace every lower-case vowel (a, e, i, o, u) by *",
        "{o} = ''.join('*' if c in 'aeiou' else c for c in {i})",
        lambda s: "".join("*" if c in VOWELS else c for c in s)),
    _op("remove_spaces", "str", "str", "remove the spaces", "{o} = {i}.replace(' ', '')",
        lambda s: s.replace(" ", "")),
    _op("sort_words", "str", "str", "sort the words alphabetically",
        "{o} = ' '.join(sorted({i}.split()))", lambda s: " ".join(sorted(s.split()))),
    _op("reverse_words", "str", "str", "reverse the order of the words",
        "{o} = ' '.join({i}.split()[::-1])", lambda s: " ".join(s.split()[::-1])),
    # str -> int
    _op("str_length", "str", "int", "count the characters", "{o} = len({i})", len),
    _op("count_vowels", "str", "int", "count the lower-case vowels a, e, i, o and u",
        "{o} = sum(c in 'aeiou' for c in {i})", lambda s: sum(c in VOWELS for c in s)),
    _op("count_words", "str", "int", "count the words", "{o} = len({i}.split())",
        lambda s: len(s.split())),
)
OPS_BY_NAME: dict[str, Op] = {op.name: op for op in OPS}
INPUT_TYPES: tuple[str, ...] = ("list", "str")


# ----------------------------------------------------------------------------------------
# Inputs


def _random_list(rng: random.Random, min_len: int, max_len: int) -> list[int]:
    return [rng.randint(-9, 9) for _ in range(rng.randint(min_len, max_len))]


def _random_words(rng: random.Random, min_words: int, max_words: int) -> str:
    letters = string.ascii_lowercase
    words = [
        "".join(rng.choice(letters) for _ in range(rng.randint(1, 6)))
        for _ in range(rng.randint(min_words, max_words))
    ]
    return " ".join(words)


# Edge cases every problem of an input type is tested on.
EDGE_CASES: dict[str, tuple[Any, ...]] = {
    "list": ([], [7], [-4], [0, 0], [-3, -8, -1], [2, 2, 5, 2]),
    "str": ("", "a", "xyz", "aeiou", "hello world"),
}


def _random_input(in_type: str, rng: random.Random, informative: bool) -> Any:
    """A random input; `informative` ones (for the statement's examples) are not tiny."""
    if in_type == "list":
        return _random_list(rng, 3, 6) if informative else _random_list(rng, 1, 8)
    return _random_words(rng, 2, 4) if informative else _random_words(rng, 1, 5)


# ----------------------------------------------------------------------------------------
# The space of compositions


def _apply(ops: Iterable[Op], value: Any) -> Any:
    for op in ops:
        value = op.fn(value)
    return value


def _well_typed(names: tuple[str, ...]) -> bool:
    ops = [OPS_BY_NAME[n] for n in names]
    if ops[0].in_type not in INPUT_TYPES:
        return False
    return all(a.out_type == b.in_type for a, b in zip(ops, ops[1:]))


@functools.lru_cache(maxsize=None)
def _probe_inputs(in_type: str) -> tuple[Any, ...]:
    rng = random.Random(f"probe/{in_type}")
    return EDGE_CASES[in_type] + tuple(_random_input(in_type, rng, False) for _ in range(40))


@functools.lru_cache(maxsize=None)
def _signature(names: tuple[str, ...]) -> tuple[str, ...]:
    """What a composition computes, as its JSON outputs on the fixed probe inputs."""
    ops = [OPS_BY_NAME[n] for n in names]
    return tuple(json.dumps(_apply(ops, x)) for x in _probe_inputs(ops[0].in_type))


@functools.lru_cache(maxsize=None)
def _signatures_up_to(depth: int) -> frozenset[tuple[str, ...]]:
    """Probe signatures of every well-typed composition of at most `depth` operations."""
    return frozenset(
        _signature(names)
        for d in range(1, depth + 1)
        for names in itertools.product([op.name for op in OPS], repeat=d)
        if _well_typed(names)
    )


def _degenerate(names: tuple[str, ...]) -> bool:
    """Constant on the probes, or computing what a shorter composition computes.

    The second rule drops e.g. `abs` before `square` and `sort_desc` before `reverse`: such a
    problem is a longer-worded copy of a simpler one, not a harder one.
    """
    signature = _signature(names)
    if len(set(signature)) < 4:
        return True
    return len(names) > 1 and signature in _signatures_up_to(len(names) - 1)


def composition_split(names: tuple[str, ...]) -> str:
    """The split a composition belongs to: a fixed hash of what it computes.

    Hashing the probe outputs rather than the names sends compositions that compute the same
    function (`sort, negate` and `negate, sort_desc`) to the same split, so the test split
    holds no paraphrase of a train problem either.
    """
    digest = hashlib.sha256(json.dumps(_signature(names)).encode()).digest()
    return "test" if digest[0] % TEST_FRACTION_DENOMINATOR == 0 else "train"


@functools.lru_cache(maxsize=None)
def compositions(split: str, depth: int) -> tuple[tuple[str, ...], ...]:
    """All non-degenerate compositions of `depth` operations in `split`, in a fixed order."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")
    if not 1 <= depth <= MAX_DEPTH:
        raise ValueError(f"depth must be in 1..{MAX_DEPTH}, got {depth}")
    out = []
    for names in itertools.product([op.name for op in OPS], repeat=depth):
        if any(a == b for a, b in zip(names, names[1:])):
            continue  # the same operation twice in a row is never a new problem
        if _well_typed(names) and composition_split(names) == split and not _degenerate(names):
            out.append(names)
    if not out:
        raise RuntimeError(f"no compositions of depth {depth} in split {split!r}")
    return tuple(out)


# ----------------------------------------------------------------------------------------
# Problem text and reference code


def _reference(ops: list[Op], call_based: bool) -> str:
    in_var = VARIABLE[ops[0].in_type]
    lines = []
    if call_based:
        lines.append(f"def {FN_NAME}({in_var}):")
    elif ops[0].in_type == "list":
        lines.append(f"{in_var} = list(map(int, input().split()))")
    else:
        lines.append(f"{in_var} = input()")
    for op in ops:
        lines.append(op.code.format(i=VARIABLE[op.in_type], o=VARIABLE[op.out_type]))
    out_type = ops[-1].out_type
    out_var = VARIABLE[out_type]
    if call_based:
        lines.append(f"return {out_var}")
        lines = lines[:1] + ["    " + line for line in lines[1:]]
    else:
        lines.append(f"print(*{out_var})" if out_type == "list" else f"print({out_var})")
    return "\n".join(lines) + "\n"


def _starter_code(in_type: str) -> str:
    return f"def {FN_NAME}({VARIABLE[in_type]}):\n"


def _stdio_text(value: Any) -> str:
    """A value as the line a program reads or prints (the APPS convention: newline-ended)."""
    if isinstance(value, list):
        return " ".join(map(str, value)) + "\n"
    return f"{value}\n"


def _statement(ops: list[Op], call_based: bool, examples: list[tuple[Any, Any]]) -> str:
    in_type, out_type = ops[0].in_type, ops[-1].out_type
    in_var = VARIABLE[in_type]
    what = "a list of integers" if in_type == "list" else (
        "a string of lower-case words separated by single spaces")
    if len(ops) == 1:
        steps = ops[0].phrase[0].upper() + ops[0].phrase[1:] + "."
    else:
        steps = "Apply these steps in order:\n" + "\n".join(
            f"{i + 1}. {op.phrase[0].upper() + op.phrase[1:]}." for i, op in enumerate(ops))
    if call_based:
        parts = [f"Write a function `{FN_NAME}({in_var})` whose argument `{in_var}` is {what}.",
                 steps, f"Return the resulting {NOUN[out_type]}.", "", "-----Examples-----"]
        for x, y in examples:
            parts += [f"Input: {in_var} = {json.dumps(x)}", f"Output: {json.dumps(y)}", ""]
        return "\n".join(parts)
    if in_type == "list":
        input_spec = ("The only line contains the integers of the list, separated by spaces "
                      "(the line is empty when the list is empty).")
    else:
        input_spec = "The only line contains the string (it may be empty)."
    output_spec = {
        "list": "Print the numbers of the resulting list on one line, separated by spaces "
                "(print an empty line if the list is empty).",
        "int": "Print the resulting number.",
        "str": "Print the resulting string.",
    }[out_type]
    parts = [f"You are given {what}.", steps, "", "-----Input-----", "", input_spec, "",
             "-----Output-----", "", output_spec, "", "-----Examples-----"]
    for x, y in examples:
        parts += ["Input", _stdio_text(x).rstrip("\n"), "", "Output",
                  _stdio_text(y).rstrip("\n"), ""]
    return "\n".join(parts)


def _test(x: Any, y: Any, call_based: bool) -> Test:
    if call_based:
        return Test(kind="call", input=[x], expected=y)
    return Test(kind="stdio", input=_stdio_text(x), expected=_stdio_text(y))


def make_problem(
    task_id: str, names: tuple[str, ...], call_based: bool, rng: random.Random
) -> Problem:
    """One problem for the composition `names`; tests drawn from `rng`."""
    ops = [OPS_BY_NAME[n] for n in names]
    in_type = ops[0].in_type
    # Fresh copies: a test's input must not alias the module's EDGE_CASES.
    hidden_inputs: list[Any] = [json.loads(json.dumps(x)) for x in EDGE_CASES[in_type]]
    while len(hidden_inputs) < NUM_HIDDEN_TESTS:
        x = _random_input(in_type, rng, informative=False)
        if x not in hidden_inputs:
            hidden_inputs.append(x)
    examples: list[tuple[Any, Any]] = []
    # Examples show a non-empty result on inputs that are not hidden tests; a non-degenerate
    # composition finds them quickly, the bound only guards against an endless loop.
    for _ in range(1000):
        if len(examples) == NUM_EXAMPLE_TESTS:
            break
        x = _random_input(in_type, rng, informative=True)
        y = _apply(ops, x)
        if y not in ([], "") and x not in hidden_inputs and x not in [e[0] for e in examples]:
            examples.append((x, y))
    else:
        raise RuntimeError(f"no informative examples for composition {names}")
    return Problem(
        task_id=task_id,
        question=_statement(ops, call_based, examples),
        starter_code=_starter_code(in_type) if call_based else "",
        fn_name=FN_NAME if call_based else None,
        example_tests=tuple(_test(x, y, call_based) for x, y in examples),
        hidden_tests=tuple(_test(x, _apply(ops, x), call_based) for x in hidden_inputs),
        difficulty=f"level{len(names)}",
        solutions=(_reference(ops, call_based),),
        source="synthetic",
    )


def generate_problems(
    split: str, num_problems: int | None = None, seed: int = DEFAULT_SEED
) -> list[Problem]:
    """`num_problems` problems of `split` (default DEFAULT_NUM_PROBLEMS[split]), deterministic.

    Depths cycle 1, 2, 3, so the levels are balanced; within a depth the compositions are
    drawn without replacement (in a seeded order) until all were used, then again. Each
    problem is call-based or standard-input with probability 1/2.
    """
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")
    if num_problems is None:
        num_problems = DEFAULT_NUM_PROBLEMS[split]
    if num_problems < 0:
        raise ValueError(f"num_problems must be >= 0, got {num_problems}")
    rng = random.Random(f"synthetic/{split}/{seed}")
    pools: dict[int, list[tuple[str, ...]]] = {d: [] for d in range(1, MAX_DEPTH + 1)}
    problems = []
    for index in range(num_problems):
        depth = index % MAX_DEPTH + 1
        if not pools[depth]:
            pools[depth] = list(compositions(split, depth))
            rng.shuffle(pools[depth])
        names = pools[depth].pop()
        call_based = rng.random() < 0.5
        problem_rng = random.Random(rng.getrandbits(64))
        problems.append(make_problem(f"synthetic/{split}/{index}", names, call_based, problem_rng))
    return problems


# ----------------------------------------------------------------------------------------
# Files


def _test_to_json(test: Test) -> dict:
    return {"kind": test.kind, "input": test.input, "expected": test.expected}


def problem_to_json(problem: Problem) -> dict:
    """A problem as a JSON-ready dict (field names of `Problem`)."""
    record = dataclasses.asdict(problem)
    record["example_tests"] = [_test_to_json(t) for t in problem.example_tests]
    record["hidden_tests"] = [_test_to_json(t) for t in problem.hidden_tests]
    record["solutions"] = list(problem.solutions)
    return record


def problem_from_json(record: dict) -> Problem:
    """Inverse of `problem_to_json`; unknown or missing fields are errors."""
    fields = {f.name for f in dataclasses.fields(Problem)}
    unknown = set(record) - fields
    if unknown:
        raise ValueError(f"unknown field(s) {sorted(unknown)}")
    if "task_id" not in record or "question" not in record:
        raise ValueError("missing field 'task_id' or 'question'")
    kwargs = dict(record)
    for key in ("example_tests", "hidden_tests"):
        kwargs[key] = tuple(Test(**t) for t in record.get(key, ()))
    kwargs["solutions"] = tuple(record.get("solutions", ()))
    return Problem(**kwargs)


def save_problems(problems: Iterable[Problem], path: str | pathlib.Path) -> None:
    """Write problems as JSON lines (one `problem_to_json` dict per line)."""
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as f:
        for problem in problems:
            f.write(json.dumps(problem_to_json(problem)) + "\n")


def load_problems(path: str | pathlib.Path | None = None) -> list[Problem]:
    """Problems from a `save_problems` file; None gives the default test split."""
    if path is None:
        return generate_problems("test")
    problems = []
    with open(path, encoding="utf-8") as f:
        for line_number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                problems.append(problem_from_json(json.loads(line)))
            except (ValueError, TypeError) as e:
                raise ValueError(f"{path}:{line_number}: bad synthetic problem: {e}") from None
    return problems
