"""Exceptions. Every error a user can cause is a :class:`VWMergeError` with a one-line message
that names the file and the problem, so the CLI can print it without a traceback."""

from __future__ import annotations


class VWMergeError(Exception):
    """Base class of every error vwmerge raises on purpose."""

    def __init__(self, message: str, *, source: str | None = None) -> None:
        self.source = source
        super().__init__(f"{source}: {message}" if source else message)


class ModelFormatError(VWMergeError):
    """The bytes are not a model file vwmerge can read (truncated, corrupt, unsupported)."""


class IncompatibleModelsError(VWMergeError):
    """The models cannot be merged with each other (bits, stack or options differ)."""


class PluginError(VWMergeError):
    """A reduction has no usable plugin, or plugins conflict."""


class MergeError(VWMergeError):
    """Bad merge parameters (weights, base model, output path)."""


class ReportError(VWMergeError):
    """A provenance report that cannot be read, or is not a vwmerge report of a known schema."""
