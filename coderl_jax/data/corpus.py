"""The pretraining corpus: the `.py` files under a folder, read, decoded and deduplicated.

The default folder is the running interpreter's standard library
(`sysconfig.get_paths()["stdlib"]`): real, varied Python that exists wherever this package
runs, so pretraining works offline with no download. Any other folder of Python files
(a checkout, an unpacked dataset) is read the same way.

Rules, each stated once here:
  * Files: regular files named `*.py` (symlinks to files are followed, symlinked folders are
    not, so a link cycle cannot loop). `site-packages`/`dist-packages` folders are always
    skipped: they are installed third-party code, not the library being read. Test folders
    (TEST_DIR_NAMES) are skipped unless `include_tests=True`.
  * Order: deterministic, by POSIX relative path (plain string sort), independent of the
    file system's listing order.
  * Decoding: PEP 263, as the interpreter itself reads source (`tokenize.detect_encoding`:
    a BOM or a `# -*- coding: ... -*-` line, else UTF-8). A file that does not decode is
    skipped and counted, with its path, in `CorpusStats.undecodable`.
  * Deduplication: exact, on the SHA-256 of the file's raw bytes. The first file in path
    order is kept; later copies are counted in `CorpusStats.duplicates` with the path they
    duplicate. Near-duplicates (whitespace or comment edits) are kept: finding them needs
    fuzzy hashing, which this reader deliberately does not do.
  * Limits: `max_files` keeps at most that many (unique, decodable) files; `max_bytes`
    stops before the first file that would take the total raw size over the limit. The
    candidates never read because of a limit are counted in `CorpusStats.not_read`.
Nothing is dropped without being counted; `CorpusStats.summary()` prints the counts.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import os
import pathlib
import sysconfig
import tokenize
from collections.abc import Iterator

# Folder names holding test suites (CPython: Lib/test, Lib/*/tests, idlelib/idle_test).
TEST_DIR_NAMES: frozenset[str] = frozenset({"test", "tests", "idle_test"})
# Folder names holding installed third-party packages, never part of the corpus.
THIRD_PARTY_DIR_NAMES: frozenset[str] = frozenset({"site-packages", "dist-packages"})


@dataclasses.dataclass(frozen=True)
class SourceFile:
    """One kept file of the corpus.

    Attributes:
      path: path relative to the corpus root, POSIX separators (e.g. "json/decoder.py").
      text: the decoded source.
      sha256: hex digest of the raw bytes (the deduplication key).
      num_bytes: size of the raw bytes.
    """

    path: str
    text: str
    sha256: str
    num_bytes: int


@dataclasses.dataclass
class CorpusStats:
    """What happened to every candidate file (candidates = kept + duplicates + undecodable
    + not_read).

    Attributes:
      root: the folder that was read.
      candidates: `.py` files found after folder filtering.
      kept: files in the corpus.
      kept_bytes: total raw size of the kept files.
      duplicates: (path, path of the kept file with the same bytes) per skipped copy.
      undecodable: (path, reason) per file that did not decode.
      not_read: candidates left unread because `max_files` or `max_bytes` was reached.
      skipped_dirs: folders not entered (third-party, tests), relative POSIX paths.
    """

    root: str
    candidates: int = 0
    kept: int = 0
    kept_bytes: int = 0
    duplicates: list[tuple[str, str]] = dataclasses.field(default_factory=list)
    undecodable: list[tuple[str, str]] = dataclasses.field(default_factory=list)
    not_read: int = 0
    skipped_dirs: list[str] = dataclasses.field(default_factory=list)

    def summary(self) -> str:
        """One line with every count, for logs."""
        return (
            f"corpus {self.root}: {self.candidates} candidate .py files, kept {self.kept} "
            f"({self.kept_bytes} bytes), {len(self.duplicates)} exact duplicates, "
            f"{len(self.undecodable)} undecodable, {self.not_read} not read (limits), "
            f"{len(self.skipped_dirs)} folders skipped"
        )


@dataclasses.dataclass(frozen=True)
class Corpus:
    """The kept files, in deterministic order, and the stats of how they were chosen."""

    files: tuple[SourceFile, ...]
    stats: CorpusStats

    def texts(self) -> list[str]:
        """The decoded sources, in corpus order."""
        return [f.text for f in self.files]

    def __len__(self) -> int:
        return len(self.files)


def default_root() -> pathlib.Path:
    """The running interpreter's standard library folder."""
    return pathlib.Path(sysconfig.get_paths()["stdlib"])


def list_python_files(
    root: str | os.PathLike, *, include_tests: bool = False, skipped_dirs: list[str] | None = None
) -> list[pathlib.Path]:
    """All candidate `.py` files under `root`, sorted by POSIX relative path.

    Args:
      root: folder to walk.
      include_tests: also walk folders named in TEST_DIR_NAMES.
      skipped_dirs: if given, receives the relative paths of the folders not entered.
    Raises:
      NotADirectoryError: `root` is not a folder.
    """
    root = pathlib.Path(root)
    if not root.is_dir():
        raise NotADirectoryError(f"corpus root {root} is not a folder")
    skip = set(THIRD_PARTY_DIR_NAMES) | (set() if include_tests else set(TEST_DIR_NAMES))
    found: list[pathlib.Path] = []
    # os.walk does not follow symlinked folders by default (followlinks=False).
    for dirpath, dirnames, filenames in os.walk(root):
        kept_dirs = []
        for name in dirnames:
            if name in skip:
                if skipped_dirs is not None:
                    skipped_dirs.append((pathlib.Path(dirpath) / name).relative_to(root).as_posix())
            else:
                kept_dirs.append(name)
        dirnames[:] = kept_dirs  # prune the walk in place
        for name in filenames:
            path = pathlib.Path(dirpath) / name
            if name.endswith(".py") and path.is_file():
                found.append(path)
    # Sort on the relative POSIX string so the order does not depend on the OS listing.
    found.sort(key=lambda p: p.relative_to(root).as_posix())
    if skipped_dirs is not None:
        skipped_dirs.sort()
    return found


def decode_source(raw: bytes) -> str:
    """Decode Python source bytes as the interpreter does (PEP 263: BOM, coding cookie, else
    UTF-8). Newlines are kept as they are in the file.

    Raises:
      SyntaxError: an invalid coding cookie (raised by `tokenize.detect_encoding`).
      LookupError: a cookie naming an unknown codec.
      UnicodeDecodeError: bytes invalid in the declared encoding.
    """
    # With a BOM detect_encoding answers "utf-8-sig", whose decode strips the BOM (a plain
    # "utf-8" decode would keep it as U+FEFF at the start of the text).
    encoding, _ = tokenize.detect_encoding(io.BytesIO(raw).readline)
    return raw.decode(encoding)


def iter_corpus(
    root: str | os.PathLike | None = None,
    *,
    include_tests: bool = False,
    max_files: int | None = None,
    max_bytes: int | None = None,
    stats: CorpusStats | None = None,
) -> Iterator[SourceFile]:
    """Yield the corpus files one at a time (see the module docstring for the rules).

    Args:
      root: folder to read; None means `default_root()`.
      include_tests: keep files inside test folders.
      max_files: keep at most this many files (None: no limit).
      max_bytes: keep files while their total raw size stays <= max_bytes (None: no limit).
      stats: if given, filled in as files are read (complete once the iterator is exhausted).
    """
    if max_files is not None and max_files < 0:
        raise ValueError(f"max_files must be >= 0 or None, got {max_files}")
    if max_bytes is not None and max_bytes < 0:
        raise ValueError(f"max_bytes must be >= 0 or None, got {max_bytes}")
    root = pathlib.Path(root) if root is not None else default_root()
    if stats is None:
        stats = CorpusStats(root=str(root))
    paths = list_python_files(root, include_tests=include_tests, skipped_dirs=stats.skipped_dirs)
    stats.candidates = len(paths)
    seen: dict[str, str] = {}  # sha256 -> relative path of the kept file
    for index, path in enumerate(paths):
        if max_files is not None and stats.kept >= max_files:
            stats.not_read = len(paths) - index
            return
        rel = path.relative_to(root).as_posix()
        raw = path.read_bytes()
        digest = hashlib.sha256(raw).hexdigest()
        if digest in seen:
            stats.duplicates.append((rel, seen[digest]))
            continue
        try:
            text = decode_source(raw)
        except (SyntaxError, LookupError, UnicodeDecodeError) as err:
            stats.undecodable.append((rel, f"{type(err).__name__}: {err}"))
            continue
        if max_bytes is not None and stats.kept_bytes + len(raw) > max_bytes:
            # This file and every later candidate stay unread.
            stats.not_read = len(paths) - index
            return
        seen[digest] = rel
        stats.kept += 1
        stats.kept_bytes += len(raw)
        yield SourceFile(path=rel, text=text, sha256=digest, num_bytes=len(raw))


def read_corpus(
    root: str | os.PathLike | None = None,
    *,
    include_tests: bool = False,
    max_files: int | None = None,
    max_bytes: int | None = None,
) -> Corpus:
    """Read the whole corpus into memory (arguments as in `iter_corpus`).

    Example:
      corpus = read_corpus(max_files=50)      # the first 50 stdlib modules, deduplicated
      print(corpus.stats.summary())
    """
    root_path = pathlib.Path(root) if root is not None else default_root()
    stats = CorpusStats(root=str(root_path))
    files = tuple(
        iter_corpus(
            root_path,
            include_tests=include_tests,
            max_files=max_files,
            max_bytes=max_bytes,
            stats=stats,
        )
    )
    return Corpus(files=files, stats=stats)
