"""What a merge did and what it cost: timed phases, bytes moved, peak memory."""

from __future__ import annotations

import contextlib
import sys
from typing import Any

import attrs

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

    def log_fields(self) -> dict[str, Any]:
        """Flat fields: one readable console line, one greppable JSON object."""
        fields: dict[str, Any] = {"output": self.output, "models": self.models}
        if self.base:
            fields["base"] = self.base
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
