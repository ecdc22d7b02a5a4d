"""What a merge hook sees besides the states: the models, the weights, the partial-result context."""

from __future__ import annotations

from typing import Any

import attrs
import numpy as np

from .._log import log
from .registry import Registry
from .stack import ModelInfo, StackEntry


@attrs.frozen(eq=False)
class ModelWeights:
    """The per-model weights a merge uses.

    ``values`` (float64) are the weights to apply: normalized to sum 1 unless the user asked for
    ``normalize=False``. ``explicit`` is true when the user gave them; then every parameter is
    exactly Σ wᵢθᵢ. Otherwise they come from example counts and ``vw_f32`` holds VW's own float32
    weights (``f32(cᵢ / S)`` with S summed in float32, in input order) for bit-exact parity.
    """

    values: np.ndarray
    explicit: bool
    vw_f32: np.ndarray
    counts: tuple[float | None, ...]
    equal_fallback: bool = False


@attrs.frozen(eq=False)
class MergeContext:
    """Everything a merge hook may consult besides the states themselves.

    ``scale`` is the server step size λ of a base-mode merge (``--scale``): the core applies it
    to each merged delta through ``vwmerge_scale`` before ``vwmerge_add``; 1 without a base.
    """

    models: tuple[ModelInfo, ...]
    base: ModelInfo | None
    output: ModelInfo
    weights: ModelWeights
    registry: Registry = attrs.field(repr=False)
    #: The warnings given through :meth:`warn` in this process, in order, for the merge's report
    #: (shared by the contexts derived from this one; the core reads them, never the log).
    warnings: list[dict[str, Any]] = attrs.field(factory=list, repr=False)
    scale: float = 1.0

    @property
    def sources(self) -> list[str]:
        return [m.source for m in self.models]

    def warn(self, reduction: StackEntry | str, message: str, **kw: Any) -> None:
        """Log a warning about ``reduction`` (stderr) and record it for the merge's report."""
        name = reduction if isinstance(reduction, str) else reduction.name
        self.warnings.append({"event": message, "reduction": name, **kw})
        log.warning(message, reduction=name, **kw)


@attrs.frozen(eq=False)
class PartialContext(MergeContext):
    """A :class:`vwmerge.MergeContext` plus how the partial results are being combined.

    ``exact``: inputs are folded sequentially in input order, so a plugin can reproduce the
    all-at-once merge's rounding; otherwise partials may be combined in any grouping.
    ``pass_index``/``prior``: the pass over the inputs and what the previous pass's finalize
    handed over (:class:`NextPass`). ``in_place``: combine may update ``left``.
    """

    exact: bool = True
    pass_index: int = 0
    prior: Any = None
    in_place: bool = False


@attrs.frozen
class NextPass:
    """Returned by ``vwmerge_merge_finalize`` to ask for another pass over the inputs."""

    prior: Any
