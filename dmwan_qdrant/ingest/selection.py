"""Which files an ingest takes: the walk of the given paths, filtered by include/exclude globs.

Patterns follow the gitignore / ripgrep ``--glob`` conventions, matched case-sensitively against
the path of a file *relative to the PATH argument it was found under*, with ``/`` separators
(a file given directly as a PATH is matched by its name):

- ``*`` matches any run of characters but ``/``, ``?`` one character but ``/``, ``[abc]`` and
  ``[!abc]`` a character class (as in `fnmatch`);
- ``**`` matches across folders: ``**/tmp/**`` is any file under a ``tmp`` folder at any depth,
  ``a/**/b.jpg`` is ``a/b.jpg``, ``a/x/b.jpg``, ``a/x/y/b.jpg``...;
- a pattern with a ``/`` at its start or in its middle is anchored at the PATH (``thumbs/*`` and
  ``/thumbs`` are about the top-level ``thumbs`` folder only); a pattern without one matches the
  name alone, at any depth (``*.jpg``, ``tmp``);
- a pattern that matches a folder matches everything under it (``thumbs``, ``thumbs/``); a
  trailing ``/`` makes a pattern match folders only.

A file is taken when it matches some include (or no include is given) and no exclude. Hidden
entries are skipped before any pattern, and only image suffixes are walked at all.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Sequence
from pathlib import Path

from ..errors import UsageError
from ..imageio import is_image_path


def glob_regex(pattern: str) -> re.Pattern[str]:
    """The regular expression (matched in full) of one glob, with ``**`` across folders."""
    out, i, n = [], 0, len(pattern)
    while i < n:
        c = pattern[i]
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif c == "*":
            out.append("[^/]*")
            i += 1
        elif c == "?":
            out.append("[^/]")
            i += 1
        elif c == "[" and (end := pattern.find("]", i + 2 if pattern[i + 1 : i + 2] in ("!", "]") else i + 1)) > 0:
            body = pattern[i + 1 : end]
            body = "^" + body[1:] if body.startswith("!") else body
            out.append("(?!/)[" + body.replace("\\", "\\\\") + "]")
            i = end + 1
        else:
            out.append(re.escape(c))
            i += 1
    return re.compile("".join(out))


class _Glob:
    """One compiled pattern: its regex, whether it may match bare names, whether folders only."""

    def __init__(self, pattern: str) -> None:
        if not pattern.strip("/"):
            raise UsageError(f"empty --include/--exclude pattern {pattern!r}")
        self.pattern = pattern
        self.dirs_only = pattern.endswith("/")
        self.anywhere = "/" not in pattern.rstrip("/")
        body = pattern.strip("/")
        self.regex = glob_regex(body)

    def matches(self, rel: str, folder: bool = False) -> bool:
        """Whether the pattern matches ``rel`` (``a/b/c.jpg``; a folder when ``folder``) or one
        of its folders; a pattern without ``/`` is tried on their names instead."""
        parts = rel.split("/")
        last = len(parts) - 1 if self.dirs_only and not folder else len(parts)
        for k in range(last):
            candidate = parts[k] if self.anywhere else "/".join(parts[: k + 1])
            if self.regex.fullmatch(candidate):
                return True
        return False


class Selection:
    """Include/exclude globs (see the module docstring); with none, every file is selected."""

    def __init__(self, include: Sequence[str] = (), exclude: Sequence[str] = ()) -> None:
        self.include = [_Glob(p) for p in include]
        self.exclude = [_Glob(p) for p in exclude]

    def __bool__(self) -> bool:
        return bool(self.include or self.exclude)

    def selects(self, rel: str) -> bool:
        """Whether a file at ``rel`` (relative to its PATH, ``/``-separated) is taken."""
        if self.include and not any(g.matches(rel) for g in self.include):
            return False
        return not any(g.matches(rel) for g in self.exclude)

    def prunes_folder(self, rel: str) -> bool:
        """Whether every file under the folder ``rel`` is excluded (the walk skips it)."""
        return any(g.matches(rel, folder=True) for g in self.exclude)

    def describe(self) -> str:
        """The patterns as options, e.g. ``--include '*.jpg' --exclude 'thumbs/*'``; "" if none."""
        opts = [f"--include {g.pattern!r}" for g in self.include] + [f"--exclude {g.pattern!r}" for g in self.exclude]
        return " ".join(opts)

    def covers(self, path: str, roots: Sequence[Path]) -> bool:
        """Whether a stored ``path`` is under one of the resolved ``roots`` and selected there:
        the points a run may prune or count as missing. Excluded ones are left alone."""
        for r in roots:
            root = str(r)
            if path == root:
                rel = Path(path).name
            elif path.startswith(root.rstrip(os.sep) + os.sep):
                rel = Path(os.path.relpath(path, root)).as_posix()
            else:
                continue
            if self.selects(rel):
                return True
        return False


def walk_images(paths: Sequence[str | Path], selection: Selection | None = None) -> Iterator[Path]:
    """Image files under ``paths`` (files given directly are taken as they are), resolved,
    each once, folders walked recursively in sorted order, hidden entries skipped, and only
    those ``selection`` takes.

    Raises:
        UsageError: a given path does not exist.
    """
    sel = selection or Selection()
    seen: set[Path] = set()
    for root in paths:
        root = Path(root).expanduser()
        if not root.exists() and not root.is_symlink():
            raise UsageError(f"{root}: no such file or folder")
        if not root.is_dir():
            files: Iterator[Path] = iter([_resolved(root)] if sel.selects(root.name) else [])
        else:
            files = _walk_folder(root.resolve(), "", sel)
        for f in files:
            if f not in seen:
                seen.add(f)
                yield f


def _walk_folder(folder: Path, rel: str, sel: Selection) -> Iterator[Path]:
    # Files and sub-folders interleaved by name, so the order is the sorted order of full paths
    # (os.walk would list a folder's files before its sub-folders). Symlinked folders are not
    # followed (no loops); symlinked files are, and resolved.
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except OSError:
        yield folder  # an unreadable sub-folder: the run reports it as failed
        return
    for e in entries:
        if e.name.startswith("."):
            continue
        sub = f"{rel}/{e.name}" if rel else e.name
        if e.is_dir(follow_symlinks=False):
            if not sel.prunes_folder(sub):
                yield from _walk_folder(Path(e.path), sub, sel)
        elif is_image_path(Path(e.name)) and sel.selects(sub):
            yield _resolved(Path(e.path)) if e.is_symlink() else Path(e.path)


def _resolved(path: Path) -> Path:
    """``path`` with symlinks resolved; a broken link stays as the user has it (its target
    means nothing to them), absolute, so the failure names the link."""
    return path.resolve() if path.exists() else Path(os.path.abspath(path))
