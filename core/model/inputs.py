"""Which files a merge reads: glob patterns and lists of models, expanded in one place.

The CLI (``vwmerge merge``/``check``: MODEL arguments, ``--models-from``, ``--base``) and the
library (:func:`vwmerge.expand_inputs`, :func:`vwmerge.engine.streaming.merge_files`) both go through
:func:`expand_inputs`, so a pattern means the same everywhere:

* An entry without glob magic (``*``, ``?``, ``[``) is taken as is; whether it exists is
  checked when it is read.
* An entry with magic that exists literally is taken as is (a file named ``m[1].model`` is that
  file, not a pattern); otherwise it is a pattern. Local paths are matched by Python's
  :mod:`glob`, fsspec URLs (``file://``, ``s3://``, ``memory://`` ...) by the URL's file system
  (its ``glob``). ``**`` matches any number of directories. Names starting with ``.`` are matched
  only where the pattern spells the dot, as in the shell. Only files match: directories are left
  out.
* A pattern's matches are sorted by plain string order of the full path or URL (``m10`` before
  ``m2``: no natural sort, so the order never depends on how names happen to be numbered), and
  replace the pattern where it stood. A URL match is spelled as its file system spells it
  (``unstrip_protocol``: ``memory://x/a.model`` comes back as ``memory:///x/a.model``).
* A pattern matching no file is an error naming the pattern.
* Entries are not de-duplicated: a file listed twice is merged twice, as it would be if typed
  twice.

A list of models (``--models-from FILE``, :func:`read_model_list`) has one path or URL a line;
blank lines and lines whose first non-blank character is ``#`` are skipped (a ``#`` elsewhere is
part of the name), leading and trailing white space is stripped, ``-`` reads standard input, and
the file itself may be an fsspec URL. Its entries are expanded like arguments, relative paths
against the current directory. The models are the MODEL arguments first, then each list's in
the order the lists were given.
"""

from __future__ import annotations

import glob
import io
import os
import sys
from collections.abc import Iterable, Iterator
from typing import IO

from ..errors import VWMergeError
from . import files

PathLike = str | os.PathLike[str]

#: The characters that make an entry a glob pattern (Python's glob and fsspec agree on these).
MAGIC = frozenset("*?[")

#: How many file names an error message lists before it says "... and N more".
SHOWN = 5


def has_magic(entry: str) -> bool:
    """Whether ``entry`` contains glob magic (``*``, ``?`` or ``[``)."""
    return not MAGIC.isdisjoint(entry)


def _hidden(parts: Iterable[str]) -> bool:
    return any(p.startswith(".") and p not in (".", "..") for p in parts)


def _expand_local(pattern: str) -> list[str]:
    if os.path.lexists(pattern):  # a literal name wins over the pattern it also is
        return [pattern]
    # Python's glob already skips names starting with "." unless the pattern spells the dot.
    return sorted(p for p in glob.iglob(pattern, recursive=True) if not os.path.isdir(p))


def _expand_url(pattern: str) -> list[str]:
    filesystem, path = files._fsspec(pattern)
    try:
        if filesystem.exists(path):  # a literal name wins over the pattern it also is
            return [pattern]
        found = filesystem.glob(path, detail=True)
    except FileNotFoundError:
        return []
    except (OSError, ValueError, NotImplementedError) as e:
        raise VWMergeError(f"cannot expand this pattern: {e}", source=pattern) from None
    parts = path.split("/")
    out = []
    for name, info in found.items():
        if info.get("type") != "directory" and not _hidden_match(parts, name.split("/")):
            out.append(filesystem.unstrip_protocol(name))
    return sorted(out)


def _hidden_match(pattern: list[str], name: list[str]) -> bool:
    """Whether fsspec matched a name starting with "." where Python's glob (and the shell) would
    not: a component of ``name`` starting with "." matched by a pattern component that does not
    start with "." itself, or by ``**`` (which never enters hidden directories)."""
    if "**" not in pattern:
        if len(pattern) != len(name):
            return False
        return any(n.startswith(".") and not p.startswith(".") for p, n in zip(pattern, name, strict=True))
    first = pattern.index("**")
    last = len(pattern) - 1 - pattern[::-1].index("**")
    head, tail = pattern[:first], pattern[last + 1 :]
    middle = pattern[first + 1 : last]  # between two **: rare; their dotted components allow a dot
    if len(name) < len(head) + len(tail):
        return False
    aligned = [*zip(head, name[: len(head)], strict=True), *zip(tail, name[len(name) - len(tail) :], strict=True)]
    if any(n.startswith(".") and not p.startswith(".") for p, n in aligned):
        return True
    spanned = name[len(head) : len(name) - len(tail)]
    return _hidden(spanned) and not any(p.startswith(".") for p in middle)


def expand(entry: PathLike) -> list[str]:
    """The files one entry stands for: itself, or a pattern's matches in sorted order.

    Raises :class:`vwmerge.VWMergeError` naming the pattern when it matches no file.
    """
    text = os.fspath(entry)
    if not has_magic(text):
        return [text]
    matches = _expand_url(text) if files.is_url(text) else _expand_local(text)
    if not matches:
        raise VWMergeError("no file matches this pattern", source=text)
    return matches


def _list_lines(stream: IO[str]) -> Iterator[str]:
    for line in stream:
        entry = line.strip()
        if entry and not entry.startswith("#"):
            yield entry


def read_model_list(source: PathLike | IO[str]) -> list[str]:
    """The entries of a list of models (``--models-from``), not yet expanded.

    ``source`` is a local path, an fsspec URL, ``"-"`` for standard input, or an open text
    stream. One entry a line; blank lines and lines starting with ``#`` (after leading white
    space) are skipped; each entry is stripped of surrounding white space.
    """
    if not isinstance(source, (str, os.PathLike)):
        return list(_list_lines(source))
    name = os.fspath(source)
    if name == "-":
        return list(_list_lines(sys.stdin))
    try:
        local = files.local_path(name)
        if local is not None:
            with open(local, encoding="utf-8") as f:
                return list(_list_lines(f))
        filesystem, path = files._fsspec(name)
        with filesystem.open(path, "rb") as raw, io.TextIOWrapper(raw, encoding="utf-8") as f:
            return list(_list_lines(f))
    except FileNotFoundError:
        raise VWMergeError("no such file (the list of models)", source=name) from None
    except IsADirectoryError:
        raise VWMergeError("is a directory, not a list of models", source=name) from None
    except UnicodeDecodeError as e:
        raise VWMergeError(f"not a text list of models ({e.reason} at byte {e.start})", source=name) from None
    except OSError as e:
        raise VWMergeError(f"cannot read the list of models: {e.strerror or e}", source=name) from None


def expand_inputs(
    models: Iterable[PathLike] = (), *, models_from: Iterable[PathLike | IO[str]] | PathLike | IO[str] = ()
) -> list[str]:
    """The model files a merge reads: ``models`` then every list in ``models_from``, expanded.

    Each entry goes through :func:`expand` (a pattern becomes its sorted matches, in place); a
    list (:func:`read_model_list`: a path, a URL, ``"-"`` or a text stream) contributes its
    entries in order. Raises :class:`vwmerge.VWMergeError` for a pattern that matches nothing,
    a list that cannot be read, or a list that names no model.
    """
    lists: Iterable[PathLike | IO[str]]
    if isinstance(models_from, (str, os.PathLike)) or hasattr(models_from, "read"):
        lists = [models_from]  # type: ignore[list-item]
    else:
        lists = models_from
    out = [path for entry in models for path in expand(entry)]
    for listing in lists:
        entries = read_model_list(listing)
        if not entries:
            label = os.fspath(listing) if isinstance(listing, (str, os.PathLike)) else "<stream>"
            raise VWMergeError("lists no model (only blank lines and # comments)", source=label)
        out.extend(path for entry in entries for path in expand(entry))
    return out


def expand_one(entry: PathLike, what: str = "--base") -> str:
    """The one file ``entry`` stands for (``--base``): a pattern must match exactly one."""
    matches = expand(entry)
    if len(matches) != 1:
        raise VWMergeError(
            f"matches {len(matches)} files ({shown(matches)}); {what} takes exactly one model", source=os.fspath(entry)
        )
    return matches[0]


def shown(names: list[str] | tuple[str, ...]) -> str:
    """The first few names, comma-separated, and how many more there are (for one-line errors)."""
    head = ", ".join(names[:SHOWN])
    return head if len(names) <= SHOWN else f"{head}, ... and {len(names) - SHOWN} more"
