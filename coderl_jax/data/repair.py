"""The repair model's input: a problem, a failed program and how it failed (one template).

CodeRL's program repair (Sec. 3.3, Appendix) trains a seq2seq model to map a failed sample
to a correct program; its input concatenates the problem, the failed program, the outcome
and the error subtype reported by the unit tests. Stated once here, used by
`coderl train-repair` (training inputs) and critic sampling's repair round (inference):

    <the problem's prompt without its ANSWER marker>
    FAILED PROGRAM:
    <program>
    OUTCOME: <CompileError | RuntimeError | FailedTest>
    ERROR: <error subtype, e.g. indexerror, or none>
    ANSWER:

The problem part is `prompts.prompt_parts` (so APPS/MBPP/synthetic format lines and starter
code appear as in generation); when a token budget is given, the statement is shortened
first and then the failed program, never the markers.
"""

from __future__ import annotations

from coderl_jax.data import prompts
from coderl_jax.data.problem import Problem

REPAIR_TEMPLATE = "\nFAILED PROGRAM:\n{program}\nOUTCOME: {outcome}\nERROR: {error_type}" \
    + prompts.ANSWER_MARKER


def repair_prompt(problem: Problem, program: str, outcome: str, error_type: str | None,
                  tokenizer=None, max_source_length: int | None = None) -> str:
    """The repair model's input text for `program`, which failed `problem` with `outcome`.

    With a tokenizer and max_source_length, the statement is cut (keeping the format line)
    and then, if still too long, the failed program's end, so the text fits.
    """
    body, suffix = prompts.prompt_parts(problem)
    if suffix.endswith(prompts.ANSWER_MARKER):
        suffix = suffix[: -len(prompts.ANSWER_MARKER)]
    tail = REPAIR_TEMPLATE.format(program=program, outcome=outcome,
                                  error_type=error_type or "none")
    text = body + suffix + tail
    if tokenizer is None or max_source_length is None:
        return text
    count = lambda t: len(tokenizer.encode(t))  # noqa: E731
    if count(text) <= max_source_length:
        return text
    # Shorten the statement first (keeping its suffix and the failure report)...
    keep = suffix + tail
    if count(keep) + 8 <= max_source_length:
        return prompts.truncate_prompt(text, tokenizer, max_source_length,
                                       suffix_start=len(body))
    # ...then the failed program's end (the statement is dropped but for its marker).
    lo, hi = 0, len(program)
    make = lambda n: prompts.QUESTION_MARKER + suffix + REPAIR_TEMPLATE.format(  # noqa: E731
        program=program[:n], outcome=outcome, error_type=error_type or "none")
    if count(make(0)) > max_source_length:
        raise ValueError(f"problem {problem.task_id!r}: the repair prompt's fixed parts exceed "
                         f"max_source_length={max_source_length}")
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if count(make(mid)) <= max_source_length:
            lo = mid
        else:
            hi = mid
    return make(hi) if count(make(hi)) <= max_source_length else make(lo)
