"""The output rules of the sandbox (compare.py) and the value transport (runner.encode_value)."""

import math

import pytest

from coderl_jax.sandbox import compare
from coderl_jax.sandbox.runner import Unencodable, encode_value


@pytest.mark.parametrize("got,expected", [
    ("3\n", "3"),
    ("  1 2  \n\n3\n", "1 2\n3\n"),          # per-line strip, blank lines dropped
    ("1   2\n", "1 2"),                        # token-wise
    ("0.333333333\n", "0.3333333333"),         # float tolerance (rel 1e-5)
    ("1.0 YES\n", "1 YES"),                    # mixed tokens: numbers compare as floats
    ("\r\n5\r\n", "5"),
])
def test_stdout_accepts(got, expected):
    assert compare.stdout_matches(got, expected)


@pytest.mark.parametrize("got,expected", [
    ("2 1", "1 2"),        # APPS' set-of-tokens fallback would accept this
    ("1 1 2", "1 2"),      # ... and this (multiplicity ignored)
    ("2\n1", "1\n2"),      # line order matters
    ("1 2", "1\n2"),       # line structure matters
    ("0.34", "0.3333"),    # outside the float tolerance
    ("", "0"),
    ("yes", "YES"),        # case matters
    ("nan", "nan0"),
    ("inf", "1e999"),      # non-finite numbers never compare as floats
])
def test_stdout_rejects(got, expected):
    assert not compare.stdout_matches(got, expected)


@pytest.mark.parametrize("expected", ["inf", "-inf", "1e999", "-1E400", "Infinity"])
def test_an_infinite_expected_token_accepts_no_finite_number(expected):
    # |x - inf| <= 1e-8 + 1e-5 * |inf| holds for every finite x, so the float rule must not
    # see infinities at all: an expected "inf" would otherwise accept any number.
    for got in ("5", "0", "-1e308", "1e308"):
        assert not compare.stdout_matches(got, expected)
        assert not compare.stdout_matches(f"1 {got}", f"1 {expected}")
    assert compare.stdout_matches(expected, expected)  # the same text still passes
    assert compare._as_float(expected) is None


def test_float_tolerance_is_numpy_allclose_default():
    b = 1000.0
    assert compare.stdout_matches(str(b + 1e-8 + 1e-5 * b * 0.99), str(b))
    assert not compare.stdout_matches(str(b + 1e-8 + 1e-5 * b * 1.01), str(b))


@pytest.mark.parametrize("got,expected,ok", [
    (3, 3, True),
    ((1, 2), [1, 2], True),                 # tuples compare as lists (APPS)
    ([(1, 2)], [[1, 2]], True),
    (5, [5], True),                         # APPS wraps many expected outputs in a list
    ([5], [[5]], True),
    (5, [5, 6], False),                     # ... but only one-element lists
    (4, 3, False),
    ("3", 3, False),
    (True, 1, True),                        # Python equality, as APPS
])
def test_call_results(got, expected, ok):
    assert compare.call_result_matches(got, expected) is ok


@pytest.mark.parametrize("value", [
    None, True, 0, -7, 10**30, 1.5, -0.0, math.inf, -math.inf, 1 + 2j, "a'\"\n", b"\x00b",
    [1, [2, (3,)]], (), (1,), {"a": [1]}, {1: 2}, {1, 2}, frozenset({3}), set(),
])
def test_encode_roundtrip(value):
    decoded = compare.decode_value(encode_value(value))
    assert decoded == value and type(decoded) is (set if type(value) is frozenset else type(value))


def test_subclasses_are_read_through_their_base_type():
    class Liar(int):
        def __eq__(self, other):
            return True

        def __repr__(self):
            return "42"

    class LyingList(list):
        def __iter__(self):
            return iter([42])

    assert compare.decode_value(encode_value(Liar(1))) == 1
    assert compare.decode_value(encode_value(LyingList([1, 2]))) == [1, 2]


@pytest.mark.parametrize("value", [object(), float("nan"), [1, object()], iter([1])])
def test_unencodable(value):
    with pytest.raises(Unencodable):
        encode_value(value)


def test_deep_nesting_is_unencodable():
    value = []
    for _ in range(500):
        value = [value]
    with pytest.raises(Unencodable):
        encode_value(value)


@pytest.mark.parametrize("text", ["__import__('os')", "foo", "[1,", "(1).__class__"])
def test_decode_rejects_non_literals(text):
    with pytest.raises(compare.UndecodableValue):
        compare.decode_value(text)
