"""The planted bugs: plausible one-line mistakes in the merge, format and writer code.

Each mutant replaces one snippet (it must occur exactly once in its file) and names the fast
subset of tests that should catch it. ``FILES`` maps the logical module names used below to paths
in the tree: when modules move, update ``FILES`` (and any snippet that changed), nothing else.
``equivalent`` marks a mutant no test can observe, with the reason; it is run and reported like
the others and counts in the score (a survivor is a survivor).
"""

from __future__ import annotations

import attrs

#: Logical module -> file, relative to the repository root.
FILES = {
    "merging": "core/engine/merging.py",
    "pipeline": "core/engine/pipeline.py",
    "partial": "core/engine/rowsums.py",
    "weights": "core/format/weights.py",
    "binio": "core/format/binio.py",
    "header": "core/format/header.py",
    "murmur": "core/format/murmur.py",
    "fs": "core/model/files.py",
    "gd": "plugins/gd.py",
    "cb_explore": "plugins/cb_explore.py",
    "baseline_challenger": "plugins/baseline_challenger.py",
}

#: The same modules before the re-layering (commit c26f716 and older), for ``run.py --rev``.
FILES_FLAT = {
    **FILES,
    "merging": "core/merging.py",
    "pipeline": "core/pipeline.py",
    "partial": "core/partial.py",
    "weights": "core/weights.py",
    "binio": "core/binio.py",
    "header": "core/header.py",
    "murmur": "core/murmur.py",
    "fs": "core/fs.py",
}

#: Named test subsets (pytest arguments), each a few seconds to a minute.
TESTS = {
    "format": ("tests/test_format_errors.py", "tests/test_roundtrip.py"),
    "merge": ("tests/test_merge_vw.py",),
    "stream": ("tests/test_streaming.py",),
    "write": ("tests/test_write_failures.py",),
    "extremes": ("tests/test_extremes.py",),
    "cli-check": ("tests/test_cli.py", "-k", "check_fails and (row or weight or bits)"),
    "cli-output": ("tests/test_cli.py", "-k", "(error_is_one_line and output) or hard_linked"),
    "cb": ("tests/test_cb_reductions.py",),
}


@attrs.frozen
class Mutant:
    id: str
    module: str  #: a key of FILES
    original: str
    mutated: str
    reason: str  #: the bug it stands for
    tests: tuple[str, ...]  #: keys of TESTS, run in this order
    equivalent: str | None = None  #: why no test can see it, if so


MUTANTS = [
    # -- writer (fs): the output path -----------------------------------------------------------
    Mutant(
        "fs-keep-temp", "fs",
        "            with contextlib.suppress(OSError):\n                os.unlink(tmp)\n",
        "            pass\n",
        "the writer leaves its temporary file behind when writing fails after the file exists (issue 12 survivor a)",
        ("write",),
    ),
    Mutant(
        "fs-in-place", "fs",
        '            fd, tmp = tempfile.mkstemp(prefix=f".{Path(local).name}.", suffix=".tmp", dir=directory)',
        '            fd, tmp = os.open(local, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644), local',
        "the writer writes OUT in place instead of a temporary file renamed over it (issue 12 survivor b)",
        ("write",),
    ),
    Mutant(
        "fs-no-rename", "fs",
        "            os.replace(tmp, local)\n",
        "            pass\n",
        "the temporary file is never renamed to OUT",
        ("write",),
    ),
    Mutant(
        "fs-no-flush", "fs",
        "                f.flush()\n                os.fsync(f.fileno())\n",
        "                pass\n",
        "no flush/fsync before the rename: a crash can leave a renamed but incomplete OUT",
        ("write",),
        equivalent="the file object is closed (and flushed) before the rename anyway; only a power loss "
        "between rename and writeback shows the missing fsync",
    ),
    Mutant(
        "fs-private-mode", "fs",
        "    return 0o666 & ~umask\n",
        "    return 0o600\n",
        "merged models are private (mkstemp's 0600) instead of what open() would give",
        ("write",),
    ),
    Mutant(
        "fs-remote-no-cleanup", "fs",
        "        with contextlib.suppress(Exception):\n            fs.rm(tmp)\n",
        "        pass\n",
        "a failed write to a URL leaves its temporary object",
        ("write",),
    ),
    Mutant(
        "pipeline-overwrite-input", "pipeline",
        "    for src in request.inputs:\n        if _same_file(output, src):",
        "    for src in request.inputs[:0]:\n        if _same_file(output, src):",
        "OUT may be one of the inputs: the merge overwrites its own input",
        ("cli-output",),
    ),
    # -- format: binio, header, weights ---------------------------------------------------------
    Mutant(
        "binio-need-off-by-one", "binio",
        "        if n < 0 or n > self.remaining:",
        "        if n < 0 or n > self.remaining + 1:",
        "a read may run one byte past the end of the buffer",
        ("format",),
    ),
    Mutant(
        "binio-count-unchecked", "binio",
        "        if item_size > 0 and n * item_size > self.remaining:",
        "        if item_size > 0 and n > self.remaining:",
        "a count is checked as items, not bytes: a corrupt count allocates too much",
        ("format",),
    ),
    Mutant(
        "binio-partial-row", "binio",
        "        if self.remaining % dt.itemsize:",
        "        if False:",
        "a truncated last weight row is silently dropped",
        ("format", "cli-check"),
    ),
    Mutant(
        "binio-bool", "binio",
        "            return value != 0\n",
        "            return value == 1\n",
        "a bool byte other than 0/1 reads as false",
        ("format",),
        equivalent="VW writes only 0 and 1, and reads another byte into a C++ bool (undefined behaviour): "
        "there is no oracle for such a file, and no test has one",
    ),
    Mutant(
        "header-no-checksum", "header",
        "            if stored != computed:",
        "            if False:",
        "the header checksum is not verified",
        ("format", "cli-check"),
    ),
    Mutant(
        "header-checksum-order", "header",
        "        add(\"f32\", self.min_label)\n        add(\"f32\", self.max_label)\n",
        "        add(\"f32\", self.max_label)\n        add(\"f32\", self.min_label)\n",
        "the checksum hashes the header fields in the wrong order",
        ("format",),
    ),
    Mutant(
        "header-bits-range", "header",
        "        if bits == 0 or bits > MAX_BITS:",
        "        if bits > MAX_BITS:",
        "bits = 0 is accepted",
        ("format",),
    ),
    Mutant(
        "murmur-seed", "murmur",
        "    h = seed & _M32",
        "    h = (seed + 1) & _M32",
        "the checksum's hash is seeded wrongly",
        ("format",),
    ),
    Mutant(
        "weights-top-off-by-one", "weights",
        "    if bits < 64 and top >= (1 << bits):",
        "    if bits < 64 and top > (1 << bits):",
        "row index 2^bits is accepted",
        ("format", "cli-check"),
    ),
    Mutant(
        "weights-skip-unchecked", "weights",
        "        if len(rows):\n            _check_top(r, int(rows[\"i\"][-1]), bits)\n",
        "        pass\n",
        "the dry run does not check the last row's index (check says OK, the merge fails)",
        ("cli-check",),
    ),
    Mutant(
        "weights-ascending-nonstrict", "weights",
        "    return len(index) < 2 or bool(np.all(index[1:] > index[:-1]))",
        "    return len(index) < 2 or bool(np.all(index[1:] >= index[:-1]))",
        "duplicate rows count as ascending: the fast path keeps both copies",
        ("format", "merge"),
    ),
    Mutant(
        "weights-canonical-first-wins", "weights",
        "        rev = idx[::-1]\n        uniq, first = np.unique(rev, return_index=True)\n"
        "        return WeightTable(uniq.astype(np.uint64), self.values[::-1][first],",
        "        rev = idx\n        uniq, first = np.unique(rev, return_index=True)\n"
        "        return WeightTable(uniq.astype(np.uint64), self.values[first],",
        "for a duplicate row the first copy wins (VW: the later one)",
        ("format", "merge"),
    ),
    Mutant(
        "weights-nonzero-positive", "weights",
        "        keep = np.any(self.values != 0, axis=1)",
        "        keep = np.any(self.values > 0, axis=1)",
        "rows whose values are all negative or NaN are dropped on write",
        ("merge", "format"),
    ),
    Mutant(
        "weights-index-dtype", "weights",
        '    return np.dtype("<u4") if bits < 31 else np.dtype("<u8")',
        '    return np.dtype("<u4") if bits < 32 else np.dtype("<u8")',
        "31-bit models get 4-byte row indices (VW: 8 from 31 on)",
        ("format", "stream"),
    ),
    Mutant(
        "weights-union-dupes", "weights",
        "    np.not_equal(merged[1:], merged[:-1], out=keep[1:])",
        "    keep[1:] = True",
        "the union of row sets keeps duplicates",
        ("merge", "stream"),
    ),
    # -- core merge: merging, partial, gd math --------------------------------------------------
    Mutant(
        "merging-normalize-swapped", "merging",
        "        vals = w / total if normalize else w",
        "        vals = w if normalize else w / total",
        "--normalize and --no-normalize swapped",
        ("merge",),
    ),
    Mutant(
        "merging-no-sum-check", "merging",
        "    if not total > 0:",
        "    if total < 0:",
        "weights summing to 0 are accepted (division by zero)",
        ("merge",),
    ),
    Mutant(
        "merging-no-finite-check", "merging",
        "        if not math.isfinite(w):",
        "        if False:",
        "non-finite weights are accepted",
        ("merge", "cli-check"),
    ),
    Mutant(
        "merging-min-label", "merging",
        "        min_label=float(np.float32(min(h.min_label for h in everyone))),",
        "        min_label=float(np.float32(everyone[0].min_label)),",
        "the merged header keeps the first model's min_label",
        ("extremes", "merge"),
    ),
    Mutant(
        "merging-max-label", "merging",
        "        max_label=float(np.float32(max(h.max_label for h in everyone))),",
        "        max_label=float(np.float32(min(h.max_label for h in everyone))),",
        "the merged header takes the smallest max_label",
        ("extremes", "merge"),
    ),
    Mutant(
        "merging-no-bits-check", "merging",
        "    if other.header.bits != first.header.bits:",
        "    if False:",
        "models with different bits are merged",
        ("merge", "cli-check"),
    ),
    Mutant(
        "merging-vw-count-weights", "merging",
        "        return (c / s).astype(np.float32)",
        "        return (c / np.float32(len(c))).astype(np.float32)",
        "example counts are not normalized by their sum",
        ("merge",),
    ),
    Mutant(
        "partial-dense-threshold", "partial",
        "    return bits < 48 and rows * DENSE_FRACTION >= (1 << bits)",
        "    return bits < 48 and rows * DENSE_FRACTION >= (1 << bits) and False",
        "accumulators never turn dense (memory, not results; a test checks when they turn dense)",
        ("stream",),
    ),
    Mutant(
        "partial-combine-union", "partial",
        "            sums[j][theirs] += other.sums[j]",
        "            sums[j][theirs] = other.sums[j]",
        "combining two sparse partials overwrites shared rows instead of adding",
        ("stream",),
    ),
    Mutant(
        "partial-finish-nan", "partial",
        "            present: np.ndarray = vals[0] != 0",
        "            present: np.ndarray = vals[0] > 0",
        "merged rows with a negative first column are dropped",
        ("stream",),
    ),
    Mutant(
        "gd-adaptive-ratio", "gd",
        "                ratio = (vals[:, ai] / np.where(ok, tot, np.float32(1))).astype(np.float32)",
        "                ratio = (vals[:, ai].astype(np.float64) / np.where(ok, tot, np.float32(1)))",
        "the adaptive ratio aᵢ/A is computed in float64 (VW divides and rounds in float32)",
        ("merge",),
    ),
    Mutant(
        "gd-exact-weights", "gd",
        "        acc[ps] += t.values.astype(np.float64) * float(wi)",
        "        acc[ps] += t.values.astype(np.float64)",
        "explicit weights are ignored (plain sum)",
        ("merge",),
    ),
    Mutant(
        "gd-combine-sign", "gd",
        "    out = (va + vb) if sign > 0 else (va - vb)",
        "    out = (va + vb) if sign < 0 else (va - vb)",
        "base mode adds where it should subtract",
        ("merge",),
    ),
    Mutant(
        "gd-online-labels", "gd",
        "            other.min_label if other.min_label < self.min_label else self.min_label,",
        "            self.min_label,",
        "gd's online state keeps the first model's min_label",
        ("extremes",),
    ),
    Mutant(
        "gd-sum-loss", "gd",
        "            self.sum_loss + other.sum_loss,",
        "            self.sum_loss,",
        "counters: sum_loss is not summed",
        ("merge",),
    ),
    # -- reductions that combine extremes --------------------------------------------------------
    Mutant(
        "synthcover-first-min", "cb_explore",
        "        return CostRange(min(lows), max(highs))",
        "        return CostRange(lows[0], max(highs))",
        "synthcover keeps the first model's min cost instead of the minimum (issue 12 survivor c)",
        ("extremes", "cb"),
    ),
    Mutant(
        "synthcover-base-max", "cb_explore",
        "        return CostRange(min(base.min_cost, delta.min_cost), max(base.max_cost, delta.max_cost))",
        "        return CostRange(min(base.min_cost, delta.min_cost), delta.max_cost)",
        "base mode: synthcover ignores the base's max cost",
        ("extremes", "cb"),
    ),
    Mutant(
        "challenger-min", "baseline_challenger",
        "    out[[idx[n] for n in MINS]] = everyone[:, [idx[n] for n in MINS]].min(axis=0)",
        "    out[[idx[n] for n in MINS]] = everyone[0, [idx[n] for n in MINS]]",
        "baseline_challenger keeps the first model's minima",
        ("extremes", "cb"),
    ),
]  # fmt: skip
