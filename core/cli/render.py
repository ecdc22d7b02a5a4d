"""Turning the CLI's documents (inspect, dry-run plan, plugin list) into text people read, or JSON.

Rendering is kept apart from building the documents so that ``--json`` prints exactly the data
the text was made from.
"""

from __future__ import annotations

import json
import math
import textwrap
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from ..contract.registry import BrokenPlugin, PluginInfo
from ..engine.pipeline import DryRun
from ..engine.report import Records


# --------------------------------------------------------------------------------------------
# JSON
def jsonable(obj: Any) -> Any:
    """Plain JSON types: numpy scalars and arrays unwrapped, tuples as lists, bytes decoded,
    and NaN/±inf as strings (JSON has no spelling for them and readers choke on ``NaN``)."""
    if isinstance(obj, Records):  # (its items made JSON-able as they are made)
        return Records(len(obj), lambda: (jsonable(v) for v in iter(obj)))
    if isinstance(obj, Mapping):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set, frozenset)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        return jsonable(obj.item())
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else str(obj)
    if isinstance(obj, int) and not isinstance(obj, bool) and abs(obj) >= 2**64:
        return fmt_int(obj)  # beyond any counter VW writes; and json cannot print 4,300+ digits
    if isinstance(obj, (bytes, bytearray)):
        return bytes(obj).decode("utf-8", "replace")
    if obj is None or isinstance(obj, (str, int, bool)):
        return obj
    return str(obj)


def to_json(obj: Any) -> str:
    return json.dumps(jsonable(obj), indent=2, allow_nan=False)


def json_chunks(obj: Any, size: int = 1 << 16) -> Iterator[str]:
    """:func:`to_json`'s text in pieces of about ``size`` characters, made as they are asked
    for: a document whose lists are :class:`~vwmerge.engine.report.Records` is never whole in
    memory (json's encoder streams when it indents)."""
    pieces: list[str] = []
    held = 0
    for piece in json.JSONEncoder(indent=2, allow_nan=False).iterencode(jsonable(obj)):
        pieces.append(piece)
        held += len(piece)
        if held >= size:
            yield "".join(pieces)
            pieces, held = [], 0
    if pieces:
        yield "".join(pieces)


# --------------------------------------------------------------------------------------------
# Small text helpers
def fmt_int(v: int) -> str:
    """Any integer, however large: exact with separators up to 21 digits, else approximate
    (Python refuses to print integers of more than 4,300 digits at all)."""
    if abs(v) < 10**21:
        return f"{v:,}"
    try:
        return f"{float(v):.6g}"
    except OverflowError:
        return f"{'-' if v < 0 else ''}~2^{abs(v).bit_length() - 1}"


def _plain_int(v: Any) -> str:
    return str(v) if not isinstance(v, int) or abs(v) < 10**21 else fmt_int(v)


def fmt_value(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, (int, np.integer)):
        return fmt_int(int(v))
    if isinstance(v, (float, np.floating)):
        f = float(v)
        if f.is_integer() and abs(f) < 1e15:
            return f"{int(f):,}"
        return f"{f:.6g}"
    if isinstance(v, (list, tuple)):
        if len(v) == 1:
            return fmt_value(v[0])
        return "[" + ", ".join(fmt_value(x) for x in v) + "]"
    return str(v)


def table(rows: Sequence[Sequence[str]], *, indent: int = 2, right: Iterable[int] = ()) -> list[str]:
    """Aligned columns; the first row is the heading. Columns in ``right`` are right-aligned."""
    if not rows:
        return []
    align_right = set(right)
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    out = []
    for r in rows:
        cells = [c.rjust(w) if i in align_right else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True))]
        out.append((" " * indent + "  ".join(cells)).rstrip())
    return out


def key_values(pairs: Sequence[tuple[str, str]], *, indent: int = 2) -> list[str]:
    if not pairs:
        return []
    width = max(len(k) for k, _ in pairs)
    return [" " * indent + f"{k.ljust(width)}  {v}" for k, v in pairs]


def fmt_bytes(n: int) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:,} {unit}" if unit == "bytes" else f"{n:,.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return str(n)  # pragma: no cover


def dist_text(dist: str, version: str) -> str:
    return f"{dist} {version}".strip()


# --------------------------------------------------------------------------------------------
# inspect
def _is_table_summary(v: Any) -> bool:
    return isinstance(v, Mapping) and "rows" in v and "columns" in v


def _inline_state(state: Mapping[str, Any] | None) -> str:
    """A reduction's scalar state on one line; nested parts get their own block below."""
    if state is None:
        return "-"
    parts = [f"{k}={fmt_value(v)}" for k, v in state.items() if not isinstance(v, Mapping)]
    nested = [k for k, v in state.items() if isinstance(v, Mapping)]
    if nested:
        parts.append("(" + ", ".join(nested) + " below)")
    return " ".join(parts) or "-"


def _weights_block(title: str, summary: Mapping[str, Any]) -> list[str]:
    lines = [title]
    cols = list(summary.get("columns", []))
    lines.append(
        f"  {fmt_value(summary.get('rows'))} rows stored ({fmt_bytes(int(summary.get('bytes', 0)))}); "
        f"columns: {', '.join(cols) or '-'}"
    )
    stats = [c for c in cols if isinstance(summary.get(c), Mapping)]
    if stats:
        rows = [["column", "nonzero", "min", "max", "mean", "l2 norm", "non-finite"]]
        for c in stats:
            s = summary[c]
            rows.append([c, *(fmt_value(s.get(k)) for k in ("nonzero", "min", "max", "mean", "l2", "nonfinite"))])
        lines += table(rows, right=range(1, 7))
    return lines


_BLOCK_TITLES = {"online": "counters"}


def render_inspect(doc: Mapping[str, Any]) -> str:
    h = doc["header"]
    ck = h["checksum"]
    checksum = f"ok (0x{ck['value']:08x})" if ck["present"] else "none (files before VW 8.0.1 have no checksum)"
    bits = int(h["bits"])
    header = [
        ("version", f"{h['version']} (VW)"),
        ("id", h["id"] or "(none)"),
        ("bits", f"{bits} ({fmt_value(2**bits)} weight rows addressable)"),
        ("labels", f"min {fmt_value(h['min_label'])}, max {fmt_value(h['max_label'])}"),
        ("options", h["options"] or "(none)"),
        ("checksum", checksum),
    ]
    if h["lda"]:
        header.insert(4, ("lda", str(h["lda"])))
    old = [f"{k} {' '.join(h[k]) or '-'}" for k in ("pairs", "triples", "interactions") if k in h]
    if "rank" in h:
        old.append(f"rank {h['rank']}")
    if old:
        header.insert(4, ("old header", ", ".join(old)))
    if h["ngrams"] or h["skips"]:
        header.insert(4, ("ngram/skips", f"{' '.join(h['ngrams']) or '-'} / {' '.join(h['skips']) or '-'}"))
    lines = [f"{doc['file']}  ({fmt_bytes(int(doc['size']))})", "", "header", *key_values(header), ""]

    stack = doc["stack"]
    with_state = sum(1 for s in stack if s["section"])
    lines.append(f"stack, top to bottom ({len(stack)} reductions, {with_state} with state in the file)")
    rows = [["reduction", "plugin", "distribution", "width", "merge", "state"]]
    for s in stack:
        name = s["reduction"] + (" (base learner)" if s["bottom"] else "")
        merge = ("yes" if s["mergeable"] else "NO: kept from one model") if s["section"] else "-"
        state = _inline_state(s["state"]) if s["section"] else "(no section)"
        rows.append(
            [
                name,
                s["plugin"],
                dist_text(s["distribution"], s.get("version", "")),
                _plain_int(s["width"]),
                merge,
                state,
            ]
        )
    lines += table(rows, right=[3])

    for s in stack:
        blocks: Mapping[str, Any] = s["state"] if isinstance(s["state"], Mapping) else {}
        for key, value in blocks.items():
            if not isinstance(value, Mapping):
                continue
            title = f"{_BLOCK_TITLES.get(key, key)} ({s['reduction']})"
            lines.append("")
            if _is_table_summary(value):
                lines += _weights_block(f"weights ({s['reduction']})", value)
            else:
                pairs = [(k, fmt_value(v)) for k, v in value.items()]
                if key == "online":
                    wle, loss = value.get("weighted_labeled_examples"), value.get("sum_loss")
                    if isinstance(wle, (int, float)) and isinstance(loss, (int, float)) and wle > 0:
                        pairs.insert(0, ("average loss", f"{loss / wle:.6g}"))
                lines += [title, *key_values(pairs)]
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# merge --dry-run / check
def _outcome_text(outcome: Mapping[str, Any] | None, action: str) -> str | None:
    """The rehearsal's outcome, when it says more than the planned action."""
    if not outcome or outcome.get("result") in ("merged", "merged deltas", "none") or action == "keep":
        return None
    return f"{outcome['result']} {outcome.get('kept_from')}: {outcome.get('why')}"


def render_plan(run: DryRun) -> str:
    doc = run.to_dict()
    req = run.request
    lines = ["merge plan (dry run: headers and reduction sections read, no weight rows)", ""]
    lines += key_values(
        [
            ("output", req.output or "(none given)"),
            ("base", req.base or "(none)"),
            ("weighting", run.plan.weighting or "(not decided: see the error)"),
        ]
    )
    plan = run.plan
    if plan.models:
        lines += ["", "models"]
        rows = [["#", "model", "VW", "bits", "examples", "weight"]]
        for i, m in enumerate(plan.models, 1):
            weight = "-" if m.weight is None else f"{m.weight:.6g}"
            rows.append([str(i), m.path, m.version, str(m.bits), fmt_value(m.examples), weight])
        if plan.base is not None:
            b = plan.base
            rows.append(["base", b.path, b.version, str(b.bits), "-", "-"])
        lines += table(rows, right=[3, 4, 5])
    if doc["stack"]:
        lines += ["", "stack, top to bottom"]
        rows = [["reduction", "plugin", "distribution", "action", "why"]]
        for r in doc["stack"]:
            name = r["reduction"] + (" (base learner)" if r["bottom"] else "")
            rows.append([name, r["plugin"], dist_text(r["distribution"], r["version"]), r["action"], r["why"]])
            outcome = _outcome_text(r.get("outcome"), r["action"])
            if outcome:
                rows.append(["", "", "", "", f"rehearsal: {outcome}"])
        lines += table(rows)
    if doc["warnings"]:
        lines += ["", "warnings"]
        for w in doc["warnings"]:
            extra = " ".join(f"{k}={v}" for k, v in w.items() if k not in ("event", "level"))
            lines.append(f"  - {w.get('event')}" + (f" ({extra})" if extra else ""))
    lines.append("")
    if run.ok:
        verdict = "OK: the merge would succeed"
        if req.output:
            verdict += f" and write {req.output}"
    else:
        verdict = f"ERROR: {run.error}"
    lines.append(f"result: {verdict}")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# plugins
def plugins_document(
    infos: Sequence[PluginInfo],
    overrides: Sequence[tuple[str, str, str]],
    broken: Sequence[BrokenPlugin] = (),
) -> dict[str, Any]:
    return {
        "plugins": [
            {
                "name": p.name,
                "distribution": p.distribution,
                "version": p.version,
                "builtin": p.builtin,
                "hooks": list(p.hooks),
                "reductions": list(p.reductions),
            }
            for p in infos
        ],
        "overrides": [{"reduction": r, "plugin": w, "overridden": lo} for r, w, lo in overrides],
        "broken": [
            {
                "name": b.name,
                "entry_point": f"{b.name} = {b.value}",
                "distribution": b.distribution,
                "version": b.version,
                "error": b.error,
            }
            for b in broken
        ],
    }


def render_plugins(doc: Mapping[str, Any]) -> str:
    plugins = doc["plugins"]
    broken = doc.get("broken", [])
    head = f"{len(plugins)} plugins loaded from the 'vwmerge' entry-point group"
    lines = [head + (f", {len(broken)} could not be loaded" if broken else "")]
    for p in plugins:
        origin = "built-in" if p["builtin"] else "third-party"
        lines += ["", f"{p['name']}  ({dist_text(p['distribution'], p['version'])}, {origin})"]
        hooks = ", ".join(h.removeprefix("vwmerge_") for h in p["hooks"]) or "-"
        for label, text in (("reductions", ", ".join(p["reductions"]) or "-"), ("hooks", hooks)):
            pieces = textwrap.wrap(text, 84, break_on_hyphens=False)
            lines.append(f"  {label:<10}  {pieces[0]}")
            lines += [f"  {'':<10}  {piece}" for piece in pieces[1:]]
    for b in broken:
        lines += [
            "",
            f"{b['name']}  ({dist_text(b['distribution'], b['version'])}, third-party, NOT LOADED)",
            f"  {'error':<10}  {b['error']}",
            f"  {'entry point':<10}  {b['entry_point']}",
        ]
    lines += ["", "overrides"]
    if doc["overrides"]:
        lines += [f"  {o['reduction']}: plugin '{o['plugin']}' overrides '{o['overridden']}'" for o in doc["overrides"]]
    else:
        lines.append("  (none: every reduction is handled by the only plugin that declares it)")
    return "\n".join(lines)
