"""The `.py` corpus reader: filtering, order, decoding, exact dedup, limits, counts."""

import pathlib

import pytest

from coderl_jax.data import corpus as C


def _write(root: pathlib.Path, rel: str, data: bytes) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


@pytest.fixture()
def tree(tmp_path):
    root = tmp_path / "src"
    _write(root, "b.py", b"x = 1\n")
    _write(root, "a.py", b"def f():\n    return 2\n")
    _write(root, "pkg/z.py", b"x = 1\n")  # same bytes as b.py: an exact duplicate
    _write(root, "pkg/y.py", b"x = 1  \n")  # near-duplicate: kept (dedup is exact)
    _write(root, "pkg/__init__.py", b"")
    _write(root, "latin.py", "# -*- coding: latin-1 -*-\ns = 'caf\u00e9'\n".encode("latin-1"))
    _write(root, "bom.py", b"\xef\xbb\xbfy = 2\n")
    _write(root, "bad.py", b"s = '\xff\xfe'\n")  # not UTF-8 and no coding cookie
    _write(root, "bad2.py", b"a = 1\nb = 2\nc = '\xff'\n")  # invalid past the cookie lines
    _write(root, "notes.txt", b"not python\n")
    _write(root, "test/test_a.py", b"assert True\n")
    _write(root, "pkg/tests/test_b.py", b"assert 1\n")
    _write(root, "site-packages/third.py", b"import os\n")
    return root


def test_filtering_order_decoding_and_dedup(tree):
    corpus = C.read_corpus(tree)
    paths = [f.path for f in corpus.files]
    # Sorted by POSIX path; duplicates, undecodable files, tests and site-packages excluded.
    assert paths == ["a.py", "b.py", "bom.py", "latin.py", "pkg/__init__.py", "pkg/y.py"]
    texts = {f.path: f.text for f in corpus.files}
    assert texts["latin.py"].endswith("s = 'caf\u00e9'\n")  # decoded via its PEP 263 cookie
    assert texts["bom.py"] == "y = 2\n"  # BOM stripped
    stats = corpus.stats
    assert stats.duplicates == [("pkg/z.py", "b.py")]
    assert [p for p, _ in stats.undecodable] == ["bad.py", "bad2.py"]
    # tokenize.detect_encoding rejects bad bytes in the first two lines with a SyntaxError.
    assert "SyntaxError" in stats.undecodable[0][1]
    assert "UnicodeDecodeError" in stats.undecodable[1][1]
    assert stats.skipped_dirs == ["pkg/tests", "site-packages", "test"]
    assert stats.candidates == 9
    assert (
        stats.candidates
        == stats.kept + len(stats.duplicates) + len(stats.undecodable) + stats.not_read
    )
    assert stats.kept_bytes == sum(f.num_bytes for f in corpus.files)
    assert "1 exact duplicates" in stats.summary() and "2 undecodable" in stats.summary()


def test_include_tests_and_never_site_packages(tree):
    corpus = C.read_corpus(tree, include_tests=True)
    paths = [f.path for f in corpus.files]
    assert "test/test_a.py" in paths and "pkg/tests/test_b.py" in paths
    assert not any(p.startswith("site-packages") for p in paths)
    assert corpus.stats.skipped_dirs == ["site-packages"]


def test_first_copy_in_path_order_is_kept(tmp_path):
    _write(tmp_path, "b/m.py", b"v = 3\n")
    _write(tmp_path, "a/m.py", b"v = 3\n")
    corpus = C.read_corpus(tmp_path)
    assert [f.path for f in corpus.files] == ["a/m.py"]
    assert corpus.stats.duplicates == [("b/m.py", "a/m.py")]


def test_limits_are_counted(tree):
    corpus = C.read_corpus(tree, max_files=2)
    assert [f.path for f in corpus.files] == ["a.py", "b.py"]
    assert corpus.stats.not_read == 7
    # max_bytes: a.py (22 bytes) + b.py (6) = 28 fit; bom.py (9) would make 37.
    corpus = C.read_corpus(tree, max_bytes=30)
    assert [f.path for f in corpus.files] == ["a.py", "b.py"]
    assert corpus.stats.kept_bytes == 28 and corpus.stats.not_read == 5
    assert C.read_corpus(tree, max_files=0).files == ()
    with pytest.raises(ValueError, match="max_files must be >= 0"):
        C.read_corpus(tree, max_files=-1)


def test_hash_is_of_raw_bytes(tree):
    import hashlib

    corpus = C.read_corpus(tree)
    for f in corpus.files:
        assert f.sha256 == hashlib.sha256((tree / f.path).read_bytes()).hexdigest()


def test_missing_root(tmp_path):
    with pytest.raises(NotADirectoryError, match="nope is not a folder"):
        C.read_corpus(tmp_path / "nope")


def test_default_root_is_the_standard_library():
    corpus = C.read_corpus(max_files=5)
    assert pathlib.Path(corpus.stats.root) == C.default_root()
    assert len(corpus) == 5
    assert all(f.path.endswith(".py") and "site-packages" not in f.path for f in corpus.files)
    assert not any(
        part in C.TEST_DIR_NAMES for f in corpus.files for part in f.path.split("/")[:-1]
    )
    # Deterministic: the same call gives the same files.
    assert [f.sha256 for f in C.read_corpus(max_files=5).files] == [f.sha256 for f in corpus.files]
