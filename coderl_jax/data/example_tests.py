"""Example tests extracted from the text of an APPS problem statement.

APPS ships only hidden tests; the examples shown in the statement are what a model (and critic
sampling, and n@k filtering) may legitimately run a program against before submitting it.
CodeRL extracted them for the APPS test split; this module does the same for any statement.

Recognized layouts (all seen in APPS, see tests/test_example_tests.py):

* Codeforces: a `-----Example-----` / `-----Examples-----` section holding one or more
  `Input` ... `Output` ... blocks introduced by lines that say just "Input" / "Output"
  (also "Sample Input" / "Sample Output", with or without a colon).
* AtCoder: `-----Sample Input-----` / `-----Sample Output 2-----` sections; an output ends at its
  first blank line, since AtCoder puts the explanation right after it.
* LeetCode (call-based, only when the problem has a fn_name): `Input: a = [1,2], k = 5` and
  `Output: 9` lines; the arguments become the positional argument list of a "call" test.
  Pairs whose values are not Python literals are skipped.

Stdin/stdout pairs follow the APPS file convention: input and output end with a newline.
"""

from __future__ import annotations

import ast
import dataclasses
import re

from coderl_jax.data.problem import Problem, Test

# "-----Title-----" section headers of Codeforces/AtCoder statements in APPS.
_HEADER = re.compile(r"^\s*-{3,}\s*(.*?)\s*-{3,}\s*$")
# Section titles that hold examples, and those that are one AtCoder sample input / output.
_EXAMPLE_SECTION = re.compile(r"^(examples?|samples?|sample tests?|example tests?)(\s+\d+)?$", re.I)
_SAMPLE_INPUT = re.compile(r"^(sample|example)\s+input(\s*\d+)?$", re.I)
_SAMPLE_OUTPUT = re.compile(r"^(sample|example)\s+output(\s*\d+)?$", re.I)
# Lines inside an example section that open an input or output block.
_INPUT_LINE = re.compile(r"^\s*(sample\s+)?input(\s*\d+)?\s*:?\s*$", re.I)
_OUTPUT_LINE = re.compile(r"^\s*(sample\s+)?output(\s*\d+)?\s*:?\s*$", re.I)
# Explanations sometimes follow an output inside an example section.
_EXPLANATION_LINE = re.compile(r"^\s*(explanation|note)\b", re.I)
# LeetCode-style call examples.
_CALL_PAIR = re.compile(r"^\s*Input:\s*(.+?)\s*\n\s*Output:\s*(.+?)\s*$", re.M)


def _strip_blank_lines(lines: list[str]) -> list[str]:
    start, end = 0, len(lines)
    while start < end and not lines[start].strip():
        start += 1
    while end > start and not lines[end - 1].strip():
        end -= 1
    return lines[start:end]


def _block(lines: list[str]) -> str | None:
    lines = _strip_blank_lines([line.rstrip() for line in lines])
    return "\n".join(lines) + "\n" if lines else None


def _sections(question: str) -> list[tuple[str, list[str]]]:
    """(title, body lines) of each `-----Title-----` section, in order."""
    sections: list[tuple[str, list[str]]] = []
    for line in question.splitlines():
        match = _HEADER.match(line)
        if match:
            sections.append((match.group(1), []))
        elif sections:
            sections[-1][1].append(line)
    return sections


def _blocks_in_example_section(lines: list[str]) -> list[tuple[str, str]]:
    """("input"|"output", text) blocks opened by Input/Output marker lines."""
    blocks: list[tuple[str, list[str]]] = []
    for line in lines:
        if _INPUT_LINE.match(line):
            blocks.append(("input", []))
        elif _OUTPUT_LINE.match(line):
            blocks.append(("output", []))
        elif blocks:
            blocks[-1][1].append(line)
    out = []
    for kind, body in blocks:
        if kind == "output":
            cut = next((i for i, line in enumerate(body) if _EXPLANATION_LINE.match(line)),
                       len(body))
            body = body[:cut]
        text = _block(body)
        if text is not None:
            out.append((kind, text))
    return out


def _pair(blocks: list[tuple[str, str]]) -> list[Test]:
    """Each input block with the output block right after it."""
    tests = []
    for (kind, text), (next_kind, next_text) in zip(blocks, blocks[1:]):
        if kind == "input" and next_kind == "output":
            tests.append(Test(kind="stdio", input=text, expected=next_text))
    return tests


def extract_stdio_examples(question: str) -> tuple[Test, ...]:
    """Stdin/stdout example tests of a Codeforces/AtCoder-style statement (see module doc)."""
    blocks: list[tuple[str, str]] = []
    for title, lines in _sections(question):
        if _EXAMPLE_SECTION.match(title):
            blocks.extend(_blocks_in_example_section(lines))
        elif _SAMPLE_INPUT.match(title):
            text = _block(lines)
            if text is not None:
                blocks.append(("input", text))
        elif _SAMPLE_OUTPUT.match(title):
            body = _strip_blank_lines(lines)
            first_blank = next((i for i, line in enumerate(body) if not line.strip()), len(body))
            text = _block(body[:first_blank])
            if text is not None:
                blocks.append(("output", text))
    return tuple(_pair(blocks))


def _call_arguments(text: str) -> list | None:
    """`a = [1, 2], k = 5` (or `[1, 2], 5`) -> [[1, 2], 5]; None if not Python literals."""
    try:
        call = ast.parse(f"f({text})", mode="eval").body
        return [ast.literal_eval(a) for a in call.args] + [
            ast.literal_eval(kw.value) for kw in call.keywords
        ]
    except (SyntaxError, ValueError, TypeError):
        return None


def extract_call_examples(question: str) -> tuple[Test, ...]:
    """LeetCode-style `Input: ...` / `Output: ...` examples as "call" tests (see module doc)."""
    tests = []
    for args_text, expected_text in _CALL_PAIR.findall(question):
        args = _call_arguments(args_text)
        try:
            expected = ast.literal_eval(expected_text)
        except (SyntaxError, ValueError, TypeError):
            continue
        if args is not None:
            tests.append(Test(kind="call", input=args, expected=expected))
    return tuple(tests)


def extract_example_tests(question: str, fn_name: str | None = None) -> tuple[Test, ...]:
    """The example tests in an APPS statement: "call" tests when fn_name is set, else stdio."""
    if fn_name:
        return extract_call_examples(question)
    return extract_stdio_examples(question)


def with_example_tests(problem: Problem) -> Problem:
    """`problem` with example tests extracted from its statement, unless it already has some."""
    if problem.example_tests:
        return problem
    tests = extract_example_tests(problem.question, problem.fn_name)
    return dataclasses.replace(problem, example_tests=tests)
