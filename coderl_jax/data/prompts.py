"""Model input text of a problem: the prompt templates (stated once, as data) and truncation.

APPS (Hendrycks et al. 2021, as in CodeRL's generate.py):

    "\\nQUESTION:\\n" + question + ["\\n" + starter_code] + FORMAT_LINE + "\\nANSWER:\\n"

with FORMAT_LINE "\\nUse Call-Based format" when the problem has a fn_name (or, lacking one,
starter code) and "\\nUse Standard Input format" otherwise. The synthetic benchmark is APPS-like
and uses the same template.

MBPP zero-shot (CodeRL Sec. 4.3, after Austin et al. 2021): the statement followed by
"Your code should satisfy these tests:" and the three asserts, wrapped in the APPS
QUESTION/ANSWER markers that an APPS-trained model was fine-tuned on (no format line).

HumanEval: the prompt itself (signature + docstring), which the model continues.

Every template is split into a *body* (the statement, which truncation may shorten) and a
*suffix* (starter code, tests, format line and the ANSWER marker, always kept whole), because a
prompt cut at the end loses exactly the part that tells the model what to write.
"""

from __future__ import annotations

import json
import pathlib
from typing import Callable, Iterable

from coderl_jax.data.problem import Problem

QUESTION_MARKER = "\nQUESTION:\n"
ANSWER_MARKER = "\nANSWER:\n"
STDIN_FORMAT = "\nUse Standard Input format"
CALL_FORMAT = "\nUse Call-Based format"
MBPP_TESTS_HEADER = "\nYour code should satisfy these tests:\n"

# source -> (body template, suffix template). Fields: question, starter (with its leading
# newline, or ""), format_line, tests (MBPP asserts, one per line).
TEMPLATES: dict[str, tuple[str, str]] = {
    "apps": (QUESTION_MARKER + "{question}", "{starter}{format_line}" + ANSWER_MARKER),
    "synthetic": (QUESTION_MARKER + "{question}", "{starter}{format_line}" + ANSWER_MARKER),
    "mbpp": (QUESTION_MARKER + "{question}", MBPP_TESTS_HEADER + "{tests}" + ANSWER_MARKER),
    "humaneval": ("", "{question}"),
}

# Where the suffix of an already formatted prompt starts, for `truncate_prompt` on plain text:
# the earliest of these markers found in the text.
SUFFIX_MARKERS: tuple[str, ...] = (MBPP_TESTS_HEADER, STDIN_FORMAT, CALL_FORMAT, ANSWER_MARKER)

# Number of asserts shown in an MBPP prompt (the paper's "3 asserts").
MBPP_NUM_PROMPT_TESTS = 3


def _fields(problem: Problem) -> dict[str, str]:
    call_based = problem.fn_name is not None or bool(problem.starter_code)
    tests = problem.example_tests or problem.hidden_tests
    asserts = [t.input for t in tests if t.kind == "assert"][:MBPP_NUM_PROMPT_TESTS]
    return {
        "question": problem.question,
        "starter": "\n" + problem.starter_code if problem.starter_code else "",
        "format_line": CALL_FORMAT if call_based else STDIN_FORMAT,
        "tests": "\n".join(asserts),
    }


def prompt_parts(problem: Problem) -> tuple[str, str]:
    """The (body, suffix) of `problem`'s prompt; body + suffix is the prompt."""
    try:
        body, suffix = TEMPLATES[problem.source]
    except KeyError:
        raise ValueError(
            f"problem {problem.task_id!r}: no prompt template for source {problem.source!r}; "
            f"expected one of {sorted(TEMPLATES)}"
        ) from None
    if problem.source == "mbpp" and not any(
        t.kind == "assert" for t in problem.example_tests or problem.hidden_tests
    ):
        raise ValueError(f"MBPP problem {problem.task_id!r} has no assert tests for its prompt")
    fields = _fields(problem)
    return body.format(**fields), suffix.format(**fields)


def format_prompt(
    problem: Problem, tokenizer=None, max_source_length: int | None = None
) -> str:
    """The prompt text of `problem`, dispatching on `problem.source`.

    With a tokenizer and max_source_length the statement is shortened so that the encoded
    prompt has at most max_source_length tokens (see `truncate_prompt`); starter code, tests,
    format line and ANSWER marker are kept. A HumanEval prompt loses its beginning instead.
    """
    body, suffix = prompt_parts(problem)
    text = body + suffix
    if tokenizer is None or max_source_length is None:
        return text
    # A template without a body (HumanEval) is code to continue: cut from its start instead.
    suffix_start = len(body) if body else None
    return truncate_prompt(text, tokenizer, max_source_length, suffix_start=suffix_start)


def _token_counter(tokenizer) -> Callable[[str], int]:
    """Encoded length including the special tokens the model sees (e.g. CodeT5's <s> ... </s>)."""
    if callable(getattr(tokenizer, "encode", None)):
        return lambda text: len(tokenizer.encode(text))
    raise TypeError(f"tokenizer {type(tokenizer).__name__} has no encode(text) method")


def find_suffix_start(text: str) -> int | None:
    """Index where the kept suffix of a formatted prompt starts, or None without any marker."""
    found = [i for i in (text.rfind(m) for m in SUFFIX_MARKERS) if i >= 0]
    return min(found) if found else None


def truncate_prompt(
    text: str, tokenizer, max_source_length: int, suffix_start: int | None = None
) -> str:
    """Shorten `text` to at most `max_source_length` tokens, keeping its suffix whole.

    text[suffix_start:] (default: from the first of SUFFIX_MARKERS, i.e. the tests header, the
    format line or the ANSWER marker) is kept; the body before it is cut from its end, so the
    statement loses its last characters (examples, notes) but keeps its beginning and the
    prompt still ends with the ANSWER marker. Text without a marker (HumanEval) is cut from the
    start instead, keeping the function signature the model continues.

    Args:
      text: a formatted prompt.
      tokenizer: anything with `encode(text) -> list[int]` (an HF tokenizer); the count includes
        the special tokens it adds, as the model input does.
      max_source_length: the model's maximum encoder length in tokens.
      suffix_start: where the kept suffix starts (format_prompt passes the exact split).

    Raises:
      ValueError: if even the suffix alone does not fit.
    """
    count = _token_counter(tokenizer)
    if count(text) <= max_source_length:
        return text
    if suffix_start is None:
        suffix_start = find_suffix_start(text)
    if suffix_start is None:
        # No marker: keep the end. Largest kept tail that fits, by bisection on its start.
        make = lambda start: text[start:]  # noqa: E731
        lo, hi = 0, len(text)  # make(hi) == "" fits (checked below); make(lo) does not
    else:
        body, suffix = text[:suffix_start], text[suffix_start:]
        if count(suffix) > max_source_length:
            raise ValueError(
                f"the prompt suffix alone ({count(suffix)} tokens: starter code, tests, format "
                f"line, ANSWER marker) exceeds max_source_length={max_source_length}"
            )
        # Keep the QUESTION marker whole when there is one.
        keep = len(QUESTION_MARKER) if body.startswith(QUESTION_MARKER) else 0
        make = lambda cut: body[: len(body) - cut] + suffix  # noqa: E731
        lo, hi = 0, len(body) - keep
    if count(make(hi)) > max_source_length:
        raise ValueError(
            f"the prompt cannot be shortened to max_source_length={max_source_length} tokens "
            f"(what must be kept already has {count(make(hi))})"
        )
    # Bisection for the smallest cut that fits: token counts grow (almost) monotonically
    # with the kept text, and the result is checked, so the returned prompt always fits.
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if count(make(mid)) <= max_source_length:
            hi = mid
        else:
            lo = mid
    return make(hi)


def write_prompts_file(
    problems: Iterable[Problem],
    path: str | pathlib.Path,
    tokenizer=None,
    max_source_length: int | None = None,
) -> int:
    """Write `{"task_id": ..., "prompt": ...}` JSON lines (the input of `coderl generate`).

    Returns the number of prompts written.
    """
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    num = 0
    with path.open("w", encoding="utf-8") as f:
        for problem in problems:
            prompt = format_prompt(problem, tokenizer, max_source_length)
            f.write(json.dumps({"task_id": problem.task_id, "prompt": prompt}) + "\n")
            num += 1
    return num
