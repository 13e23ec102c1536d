"""Finding the book's pages: where a path points inside the book, ignore globs, discovery."""

from __future__ import annotations

import fnmatch
import logging
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from django.conf import settings

from ragsite.rag.config import get_config
from ragsite.rag.exceptions import BadRequest, PathOutsideBook

from ..sites import book_site

logger = logging.getLogger(__name__)

BOOK_SUFFIXES = (".md", ".mdx")
SKIPPED_DIR_NAMES = frozenset({"node_modules", "__pycache__"})
IGNORE_FILE_NAME = ".ragsiteignore"

PATH_OUTSIDE_BOOK_MESSAGE = "The path must be a folder or file inside the book folder."
PATH_NOT_FOUND_MESSAGE = "No such folder or file in the book: {path}"
PATH_MISSING_MESSAGE = "No such folder or file: {path}"
FILE_OUTSIDE_BOOK_MESSAGE = (
    "A single file can only be ingested from inside BOOK_DIR ({book_dir}); give its folder instead."
)


@dataclass(frozen=True, slots=True)
class BookFile:
    """A page found in the book folder."""

    path: str  # posix, relative to the book folder
    abs_path: Path


@dataclass(frozen=True, slots=True)
class BookTarget:
    """What a run ingests: the book's root folder and a part of it ("" for all of it)."""

    book_dir: Path  # absolute, symlinks resolved
    scope: str = ""  # posix, relative to book_dir

    @property
    def path(self) -> Path:
        """The absolute path of the part ingested."""
        return self.book_dir / self.scope if self.scope else self.book_dir


def book_target(
    *, path: str | Path | None, book_dir: Path | None = None, local: bool = False
) -> BookTarget:
    """Resolve what `path` names into a book folder and a scope inside it, in one place.

    Args:
        path: None or "" for the whole book. By default a path relative to the book
            folder (what the API and the admin receive). With `local`, a path on this
            machine (relative to the working directory), as the `ingest_book` command
            takes it: inside the book folder it is that part of the book; any other
            folder is a book of its own.
        book_dir: the book's root folder; default BOOK_DIR.
        local: read `path` as a local path (see above).

    Raises:
        PathOutsideBook: the path is absolute, has a `..` part, or resolves (through a
            symlink) outside the book folder (not with `local`, except for a file
            outside the book folder).
        BadRequest: the path does not exist.
    """
    root = Path(book_dir if book_dir is not None else get_config().book_dir).resolve()
    raw = "" if path is None else str(path).strip()
    if raw in {"", "."}:
        return BookTarget(book_dir=root)
    if local:
        target = Path(raw).expanduser().resolve()
        if not target.exists():
            raise BadRequest(PATH_MISSING_MESSAGE.format(path=raw), details={"path": raw})
        if target.is_relative_to(root):
            scope = target.relative_to(root).as_posix()
            return BookTarget(book_dir=root, scope="" if scope == "." else scope)
        if not target.is_dir():
            raise PathOutsideBook(
                FILE_OUTSIDE_BOOK_MESSAGE.format(book_dir=root), details={"path": raw}
            )
        return BookTarget(book_dir=target)
    raw = raw.replace("\\", "/")
    candidate = PurePosixPath(raw)
    if not candidate.parts:
        return BookTarget(book_dir=root)
    if candidate.is_absolute() or ".." in candidate.parts or ":" in candidate.parts[0]:
        raise PathOutsideBook(PATH_OUTSIDE_BOOK_MESSAGE, details={"path": path})
    resolved = (root / Path(*candidate.parts)).resolve()
    if not resolved.is_relative_to(root):
        raise PathOutsideBook(PATH_OUTSIDE_BOOK_MESSAGE, details={"path": path})
    if not resolved.exists():
        raise BadRequest(PATH_NOT_FOUND_MESSAGE.format(path=raw), details={"path": path})
    scope = resolved.relative_to(root).as_posix()
    return BookTarget(book_dir=root, scope="" if scope == "." else scope)


def ignore_patterns(*, book_dir: Path, extra: Iterable[str] = ()) -> list[str]:
    """Return the ignore globs: `extra` (INGEST_IGNORE) plus the book's `.ragsiteignore` lines."""
    patterns = [p.strip() for p in extra if p.strip()]
    ignore_file = Path(book_dir) / IGNORE_FILE_NAME
    if ignore_file.is_file():
        for line in ignore_file.read_text(encoding="utf-8", errors="replace").splitlines():
            line = line.strip()
            if line and not line.startswith("#"):
                patterns.append(line)
    return patterns


def _ignored(rel: str, patterns: Sequence[str], *, is_dir: bool) -> bool:
    """True when a glob matches the relative path or its name (`dir/` globs match folders only)."""
    name = rel.rsplit("/", 1)[-1]
    for pattern in patterns:
        dir_only = pattern.endswith("/")
        glob = pattern.strip("/")
        if not glob or (dir_only and not is_dir):
            continue
        if fnmatch.fnmatchcase(rel, glob) or fnmatch.fnmatchcase(name, glob):
            return True
    return False


def book_discover(
    *, book_dir: Path, path: str | None = None, ignore: Sequence[str] = ()
) -> list[BookFile]:
    """Return every .md/.mdx page under `book_dir` (or its sub-path), sorted by path.

    Hidden files and folders, `node_modules`, files matching an ignore glob and
    symlinks pointing outside the book are skipped.
    """
    target = book_target(book_dir=book_dir, path=path)
    root, start = target.book_dir, target.path
    found: list[BookFile] = []
    is_page = book_site(book_dir=root, config=get_config()).is_page  # SUMMARY.md, _partials

    def consider(abs_path: Path) -> None:
        rel = abs_path.relative_to(root).as_posix()
        if abs_path.name.startswith(".") or not abs_path.name.lower().endswith(BOOK_SUFFIXES):
            return
        if _ignored(rel, ignore, is_dir=False) or not is_page(rel):
            return
        if not abs_path.resolve().is_relative_to(root) or not abs_path.is_file():
            logger.warning("skipping %s: it points outside the book folder", rel)
            return
        found.append(BookFile(path=rel, abs_path=abs_path))

    if start.is_file():
        consider(start)
        return found
    for dirpath, dirnames, filenames in os.walk(start):
        here = Path(dirpath)
        kept = []
        for name in sorted(dirnames):
            rel_dir = (here / name).relative_to(root).as_posix()
            if (
                name.startswith(".")
                or name in SKIPPED_DIR_NAMES
                or _ignored(rel_dir, ignore, is_dir=True)
            ):
                continue
            kept.append(name)
        dirnames[:] = kept
        for name in filenames:
            consider(here / name)
    found.sort(key=lambda f: f.path)
    return found


def in_scope(path: str, scope: str) -> bool:
    """True when the book path `path` is `scope` or inside it ("" is the whole book)."""
    return not scope or path == scope or path.startswith(scope + "/")


def display_dir(book_dir: Path) -> str:
    """The book folder as users know it: relative to the project when inside it."""
    base = Path(settings.BASE_DIR).resolve()
    book_dir = Path(book_dir).resolve()
    return book_dir.relative_to(base).as_posix() if book_dir.is_relative_to(base) else str(book_dir)
