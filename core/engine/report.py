"""What a merge did and what it cost: timed phases, bytes moved, peak memory, and its provenance.

:meth:`MergeReport.to_provenance` is the report ``vwmerge merge --report``/``--json`` writes: a
versioned JSON document (schema :data:`SCHEMA`, every field in docs/report.md) saying which
files, with which weights, plugins and plan, made the output, with the SHA-256 of every file
taken while the merge read or wrote it. :func:`verify` checks files against such a report.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import attrs

from ..errors import MergeError, ReportError, VWMergeError
from ..model import files
from .plan import MergePlan, ModelPlan, Outcome

#: The report's schema name and version: a reader checks it before trusting any other field.
SCHEMA = "vwmerge-report/1"

try:  # not on Windows
    import resource
except ImportError:  # pragma: no cover
    resource = None  # type: ignore[assignment]


@attrs.frozen
class Phase:
    """One timed step of a merge."""

    name: str
    seconds: float
    bytes_read: int = 0
    bytes_written: int = 0
    #: Input bytes read again by a later pass (gd's exact merge maps each input twice).
    bytes_reread: int = 0


def peak_rss_bytes() -> int:
    """The process's peak resident set size so far (0 where the OS does not say)."""
    # Linux: this program's own high-water mark (ru_maxrss starts from a forking parent's peak).
    with contextlib.suppress(OSError, ValueError), open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    if resource is None:  # pragma: no cover
        return 0
    peak = int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
    return peak if sys.platform == "darwin" else peak * 1024  # Linux reports KiB


def workers_peak_rss_bytes() -> int:
    """The largest peak resident set size of this process's finished children (--jobs workers)."""
    if resource is None:  # pragma: no cover
        return 0
    peak = int(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
    return peak if sys.platform == "darwin" else peak * 1024


@attrs.frozen
class MergeReport:
    """What a merge did and what it cost, for the summary event and ``merge --json``."""

    output: str
    models: int
    base: str | None
    phases: tuple[Phase, ...]
    peak_rss_bytes: int
    worker_peak_rss_bytes: int = 0  #: the largest worker process's peak (--jobs), 0 without
    # Provenance (merge_files(..., provenance=True)): what went in, how, and what came out.
    started: str | None = None  #: UTC, ISO 8601
    argv: tuple[str, ...] = ()
    cwd: str | None = None  #: the working directory relative paths are relative to
    plan: MergePlan | None = None
    outcomes: tuple[Outcome, ...] = ()
    #: The digest of each input (in input order) and of the base, as the merge read them.
    input_digests: tuple[files.Digest, ...] = ()
    base_digest: files.Digest | None = None
    output_digest: files.Digest | None = None
    executor: str = "local"
    weights_given: tuple[float, ...] | None = None
    vw_options: str | None = None

    @property
    def bytes_read(self) -> int:
        return sum(p.bytes_read for p in self.phases)

    @property
    def bytes_written(self) -> int:
        return sum(p.bytes_written for p in self.phases)

    def to_dict(self) -> dict[str, Any]:
        return {
            "output": self.output,
            "models": self.models,
            "base": self.base,
            "phases": {p.name: attrs.asdict(p, filter=lambda a, _: a.name != "name") for p in self.phases},
            "seconds": round(sum(p.seconds for p in self.phases), 6),
            "bytes_read": self.bytes_read,
            "bytes_written": self.bytes_written,
            "peak_rss_bytes": self.peak_rss_bytes,
            "worker_peak_rss_bytes": self.worker_peak_rss_bytes,
        }

    def to_provenance(self, *, lazy: bool = False) -> dict[str, Any]:
        """The provenance report (schema :data:`SCHEMA`, docs/report.md) as a JSON-able dict.

        Needs a merge run with ``provenance=True`` (``vwmerge merge --report``/``--json``).
        ``lazy``: ``inputs`` is :class:`Records`, each input's record made as it is iterated (a
        writer that streams the document then holds one, not one per model).
        """
        if self.plan is None or self.output_digest is None or len(self.input_digests) != self.models:
            raise MergeError("this merge recorded no provenance; run it with provenance=True (vwmerge merge --report)")
        plan = self.plan

        def model(m: ModelPlan, d: files.Digest, url: str) -> dict[str, Any]:
            return {
                "url": url, "size": d.size, "sha256": d.sha256, "examples": m.examples, "weight": m.weight,
                "vw_version": m.version, "bits": m.bits,
            }  # fmt: skip

        stack, warnings = plan.steps_and_warnings(self.outcomes)
        digests = self.input_digests
        paths = [m.path for m in plan.models]
        timings = self.to_dict()
        base = None
        if self.base is not None and plan.base is not None and self.base_digest is not None:
            base = model(plan.base, self.base_digest, self.base)
            del base["weight"]
        return {
            "schema": SCHEMA,
            "vwmerge_version": _own_version(),
            "argv": list(self.argv),
            "started": self.started,
            "cwd": self.cwd,
            "settings": {
                "weights": list(self.weights_given) if self.weights_given is not None else None,
                "normalize": plan.normalize,
                "scale": plan.scale,
                "weighting": plan.weighting,
                "vw_options": self.vw_options,
                "executor": self.executor,
            },
            "inputs": Records(len(plan.models), lambda: map(model, plan.models, digests, paths))
            if lazy
            else [model(m, d, m.path) for m, d in zip(plan.models, digests, strict=True)],
            "base": base,
            "stack": stack,
            "warnings": warnings,
            "output": {"url": self.output, "size": self.output_digest.size, "sha256": self.output_digest.sha256},
            **{k: timings[k] for k in ("phases", "seconds", "bytes_read", "bytes_written")},
            "bytes_reread": sum(p.bytes_reread for p in self.phases),
            "peak_rss_bytes": self.peak_rss_bytes,
            "worker_peak_rss_bytes": self.worker_peak_rss_bytes,
        }

    def log_fields(self) -> dict[str, Any]:
        """Flat fields: one readable console line, one greppable JSON object."""
        fields: dict[str, Any] = {"output": self.output, "models": self.models}
        if self.base:
            fields["base"] = self.base
        if self.plan is not None and self.plan.scale is not None:
            fields["scale"] = self.plan.scale
        for p in self.phases:
            fields[f"{p.name}_s"] = round(p.seconds, 3)
        fields["bytes_read"] = self.bytes_read
        fields["bytes_written"] = self.bytes_written
        reread = sum(p.bytes_reread for p in self.phases)
        if reread:
            fields["bytes_reread"] = reread
        fields["peak_rss_mib"] = round(self.peak_rss_bytes / 2**20, 1)
        if self.worker_peak_rss_bytes:
            fields["worker_peak_rss_mib"] = round(self.worker_peak_rss_bytes / 2**20, 1)
        return fields


def _own_version() -> str:
    from importlib.metadata import PackageNotFoundError, version  # (a report only: start-up)

    try:
        return version("vwmerge")
    except PackageNotFoundError:  # pragma: no cover - a source tree without package metadata
        return "0.0.0"


# --------------------------------------------------------------------------------------------
# vwmerge verify
class Records(list):  # type: ignore[type-arg]
    """A list in a JSON document whose items are made as it is iterated (``count`` of them):
    :meth:`MergeReport.to_provenance`'s ``inputs`` when the document is streamed out (json's
    streaming encoder takes it for a list: it asks only its length and its items in order).
    It holds none of them: do not index it."""

    def __init__(self, count: int, items: Callable[[], Iterator[Any]]) -> None:
        super().__init__()
        self._count, self._items = count, items

    def __bool__(self) -> bool:
        return self._count > 0

    def __len__(self) -> int:
        return self._count

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return self._items()


@attrs.frozen
class Mismatch:
    """The first file that does not match its report: which, and how."""

    role: str  #: "output", "input 3", "base"
    url: str
    problem: str

    def __str__(self) -> str:
        return f"{self.url}: {self.problem} ({self.role})"


def read_report(path: str) -> dict[str, Any]:
    """A provenance report from ``path``, checked for its schema and the fields verify needs."""
    try:
        with open(path, "rb") as f:
            doc = json.loads(f.read())
    except FileNotFoundError:
        raise ReportError("no such report file", source=path) from None
    except IsADirectoryError:
        raise ReportError("is a directory, not a report", source=path) from None
    except PermissionError:
        raise ReportError("permission denied", source=path) from None
    except OSError as e:
        raise ReportError(f"cannot read the report: {e.strerror or e}", source=path) from None
    except (ValueError, UnicodeDecodeError) as e:
        raise ReportError(f"not a JSON document ({e})", source=path) from None
    if not isinstance(doc, dict) or "schema" not in doc:
        raise ReportError('not a vwmerge report (no "schema" field)', source=path)
    if doc["schema"] != SCHEMA:
        raise ReportError(f"unknown report schema {doc['schema']!r} (this vwmerge reads {SCHEMA!r})", source=path)

    def record(obj: Any, where: str) -> None:
        ok = (
            isinstance(obj, Mapping) and isinstance(obj.get("url"), str) and isinstance(obj.get("size"), int)
            and isinstance(obj.get("sha256"), str) and len(obj["sha256"]) == 64
        )  # fmt: skip
        if not ok:
            raise ReportError(f"invalid report: {where} needs a url, a size and a sha256", source=path)

    record(doc.get("output"), "output")
    if not isinstance(doc.get("inputs"), list) or not doc["inputs"]:
        raise ReportError("invalid report: no inputs", source=path)
    for i, item in enumerate(doc["inputs"], 1):
        record(item, f"input {i}")
    if doc.get("base") is not None:
        record(doc["base"], "base")
    return doc


def _check(role: str, record: Mapping[str, Any], cwd: str | None) -> Mismatch | None:
    url = str(record["url"])
    target = url if files.is_url(url) or cwd is None else os.path.join(cwd, url)
    try:
        found = files.digest_file(target)
    except VWMergeError as e:
        return Mismatch(role, url, str(e).removeprefix(f"{url}: "))
    if found.size != record["size"]:
        return Mismatch(role, url, f"size differs: {found.size:,} bytes, the report says {record['size']:,}")
    if found.sha256 != record["sha256"]:
        return Mismatch(role, url, f"sha256 differs: {found.sha256}, the report says {record['sha256']}")
    return None


def verify(report: str | Mapping[str, Any], *, inputs: bool = False) -> Mismatch | None:
    """Re-hash the files a report names: the output, and with ``inputs`` every input and the base.

    Returns None when every file matches its size and SHA-256, else the first that does not (in
    the order output, inputs, base). ``report``: a report file's path (read and checked by
    :func:`read_report`; a bad report raises :class:`ReportError`) or the document itself.
    """
    doc = read_report(report) if isinstance(report, str) else report
    todo: list[tuple[str, Mapping[str, Any]]] = [("output", doc["output"])]
    if inputs:
        items: Sequence[Mapping[str, Any]] = doc["inputs"]
        todo += [(f"input {i}", item) for i, item in enumerate(items, 1)]
        if doc.get("base") is not None:
            todo.append(("base", doc["base"]))
    for role, record in todo:
        bad = _check(role, record, doc.get("cwd"))
        if bad is not None:
            return bad
    return None
