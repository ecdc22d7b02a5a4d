"""Files of VW 7.6.0–8.0.2, which VW 9.11.9 still loads: read, written back byte for byte, merged.

VW 9.11.9 cannot write these versions, so every fixture is a real VW 9.11.9 model re-encoded in
the old layout by tests/helpers/oldformat.py (written from docs/format.md, independent of vwmerge).
VW 9.11.9 loading a fixture and predicting exactly like the original model is what shows the
fixture (and the documented layout) right; vwmerge is then checked against it.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import pytest
import vowpalwabbit
import vwmerge
from helpers import oldformat as of
from helpers import vwtrain
from helpers.cli import run_cli as cli
from helpers.models import INPUT_SEEDS, INPUT_SIZES
from vwmerge.engine.streaming import merge_files

Version = tuple[int, int, int]

ALL_VERSIONS: list[Version] = [
    (7, 6, 0), (7, 8, 0), (7, 10, 1), (7, 10, 2), (7, 10, 3), (8, 0, 0), (8, 0, 1), (8, 0, 2),
]  # fmt: skip
#: One version per header variant: rank+pairs and no resume fix, interactions list, 8.0.1 and
#: 8.0.2 checksums.
SOME_VERSIONS: list[Version] = [(7, 6, 0), (7, 10, 2), (8, 0, 1), (8, 0, 2)]


def vtext(v: Version) -> str:
    return ".".join(map(str, v))


def resume(version: Version, body: bytes, offset: int = 0) -> bytes:
    return of.gd_resume_body(version, body, offset) if body[offset] == 1 else body


@attrs.frozen
class Case:
    args: str
    versions: list[Version]
    #: The sections of the 9.11.9 file re-encoded for an old version.
    body: Callable[[Version, bytes], bytes] = resume
    #: Options VW 9.11.9 implies for old files that the fixture leaves out (--cb_force_legacy).
    implied: str = ""
    file: bool = False  # train and predict through data files (lda)
    #: The 9.x file with the records old files lack set to what VW 9.11.9 then starts with
    #: (a fixture predicts like this reference; identical to the original when nothing is lost).
    reference: Callable[[bytes], bytes] | None = None


def chain(*steps: Callable[[Version, bytes], bytes]) -> Callable[[Version, bytes], bytes]:
    """Apply section edits from the last to the first (so earlier offsets stay valid), then gd's."""

    def run(version: Version, body: bytes) -> bytes:
        for step in reversed(steps):
            body = step(version, body)
        return body

    return run


def then_resume(edit: Callable[[Version, bytes], bytes]) -> Callable[[Version, bytes], bytes]:
    return lambda v, b: resume(v, edit(v, b))


def zeroed(*records: tuple[int, int]) -> Callable[[bytes], bytes]:
    def run(modern: bytes) -> bytes:
        for start, size in records:
            modern = of.zero(start, size)(modern)
        return modern

    return run


CASES = {
    "gd": Case("", ALL_VERSIONS),
    "gd-predict-only": Case("--predict_only_model", SOME_VERSIONS),
    "gd-quadratic": Case("-q ab", [(7, 8, 0), (7, 10, 1), (7, 10, 2), (7, 10, 3)]),
    "oaa": Case("--oaa 3", SOME_VERSIONS),
    "cb-legacy": Case("--cb 3 --cb_force_legacy", SOME_VERSIONS, implied=" --cb_force_legacy"),
    "cb_adf": Case(
        "--cb_adf --cb_type ips --rank_all",
        SOME_VERSIONS,
        body=lambda v, b: resume(v, of.without_cb_adf_counters(v, b)),
    ),
    # legacy cb_explore: u64 counter (8.9.0 on), then gd
    "cb_explore-legacy": Case(
        "--cb_explore 3 --cb_force_legacy",
        SOME_VERSIONS,
        implied=" --cb_force_legacy",
        body=then_resume(of.drop(0, 8, (8, 9, 0))),
        reference=zeroed((0, 8)),
    ),
    # cover / squarecb: u64 counter (8.9.0 / 8.11.0 on), cb_adf's counters (8.3.2 on), gd
    "cover": Case(
        "--cb_explore_adf --cover 2",
        SOME_VERSIONS,
        body=then_resume(chain(of.drop(0, 8, (8, 9, 0)), of.drop(8, 16, (8, 3, 2)))),
        reference=zeroed((0, 8), (8, 16)),
    ),
    "squarecb": Case(
        "--cb_explore_adf --squarecb",
        SOME_VERSIONS,
        body=then_resume(chain(of.drop(0, 8, (8, 11, 0)), of.drop(8, 16, (8, 3, 2)))),
        reference=zeroed((0, 8), (8, 16)),
    ),
    # ccb: the multi-slot flag (8.9.0 on), cb_adf's counters, gd
    "ccb": Case(
        "--ccb_explore_adf",
        SOME_VERSIONS,
        body=then_resume(chain(of.drop(0, 1, (8, 9, 0)), of.drop(1, 16, (8, 3, 2)))),
        reference=zeroed((0, 1), (1, 16)),
    ),
    "lda": Case("--lda 3 -b 8", SOME_VERSIONS, body=of.lda_u32_body(3), file=True),
    "rank": Case("--rank 2 -q ab -b 10", SOME_VERSIONS, body=lambda v, b: b),
}


# --- building fixtures -------------------------------------------------------------------------
def _lines(args: str, seed: int, n: int) -> list[str]:
    examples = vwtrain._examples(args, random.Random(seed), n)
    return [ex if isinstance(ex, str) else "\n".join(ex) + "\n" for ex in examples]


def train(case: Case, seed: int, n: int, path: Path) -> Path:
    if not case.file:
        return vwtrain.train(case.args, seed, path, n=n)
    data = path.with_suffix(".txt")
    data.write_text("\n".join(_lines(case.args, seed, n)) + "\n")
    vowpalwabbit.Workspace(f"{case.args} -d {data} -f {path} --quiet", enable_logging=False).finish()
    return path


def predict(case: Case, model: Path) -> list[Any]:
    if not case.file:
        return vwtrain.predict(model, vwtrain.test_examples(case.args, n=12))
    data, preds = model.with_suffix(".predict.txt"), model.with_suffix(".preds")
    data.write_text("\n".join(_lines(case.args, 999, 12)) + "\n")
    vowpalwabbit.Workspace(f"-i {model} -t -d {data} -p {preds} --quiet", enable_logging=False).finish()
    return preds.read_text().split("\n")


def encode(case: Case, version: Version, modern: bytes, **header: Any) -> bytes:
    """``modern`` (a 9.11.9 file) in the layout of ``version``, as a VW of that version wrote it:
    -q in the header before 7.10.3 (the interactions list in 7.10.2; before it the pairs, which
    VW 9.11.9 cannot use, so there -q also stays in the options), --rank in the header up to
    7.8.0, no option that VW 9.11.9 implies for the version."""
    m = of.split_modern(modern)
    options = m.options
    for implied in case.implied.split(" --"):
        if implied:
            options = options.replace(f" --{implied}", "")
    if (7, 10, 2) <= version < (7, 10, 3) and " --quadratic ab" in options:
        options = options.replace(" --quadratic ab", "")
        header.setdefault("interactions", (b"ab",))
    elif version < (7, 10, 2) and " --quadratic ab" in options:
        header.setdefault("pairs", (b"ab",))
    if version <= (7, 8, 0) and " --rank 2" in options:
        options = options.replace(" --rank 2", "")
        header.setdefault("rank", 2)
    return of.old_header(version, m, options, **header) + case.body(version, m.body)


class Fixtures:
    def __init__(self, root: Path) -> None:
        self.root = root
        self._cache: dict[Any, Any] = {}

    def modern(self, name: str, i: int) -> Path:
        key = ("modern", name, i)
        if key not in self._cache:
            path = self.root / f"{name}.{i}.model"
            self._cache[key] = train(CASES[name], INPUT_SEEDS[i], INPUT_SIZES[i], path)
        return self._cache[key]

    def old(self, name: str, version: Version, i: int = 0) -> Path:
        key = ("old", name, version, i)
        if key not in self._cache:
            path = self.root / f"{name}.{i}.v{vtext(version)}.model"
            path.write_bytes(encode(CASES[name], version, self.modern(name, i).read_bytes()))
            self._cache[key] = path
        return self._cache[key]

    def reference(self, name: str, i: int) -> Path:
        """The original, with what old files lack set as VW 9.11.9 sets it (see Case.reference)."""
        make = CASES[name].reference
        if make is None:
            return self.modern(name, i)
        key = ("reference", name, i)
        if key not in self._cache:
            path = self.root / f"{name}.{i}.reference.model"
            path.write_bytes(make(self.modern(name, i).read_bytes()))
            self._cache[key] = path
        return self._cache[key]

    def modern_merge(self, name: str) -> Path:
        """vwmerge's merge of the two 9.x references (the old-layout merges must agree with it)."""
        key = ("modern_merge", name)
        if key not in self._cache:
            out = self.root / f"{name}.merged.model"
            merge_files([self.reference(name, 0), self.reference(name, 1)], out)
            self._cache[key] = out
        return self._cache[key]

    def predictions(self, name: str, path: Path) -> list[Any]:
        key = ("predict", name, str(path), path.stat().st_mtime_ns)
        if key not in self._cache:
            self._cache[key] = predict(CASES[name], path)
        return self._cache[key]


@pytest.fixture(scope="module")
def fx(tmp_path_factory: pytest.TempPathFactory) -> Fixtures:
    return Fixtures(tmp_path_factory.mktemp("old_versions"))


def version_of(path: Path) -> str:
    raw = path.read_bytes()
    n = int.from_bytes(raw[:4], "little")
    return raw[4 : 4 + n].split(b"\0", 1)[0].decode()


PARAMS = [pytest.param(name, v, id=f"{name}-{vtext(v)}") for name, case in CASES.items() for v in case.versions]


# --- the fixtures are right (VW is the judge) ---------------------------------------------------
@pytest.mark.parametrize(("name", "version"), PARAMS)
def test_vw_loads_the_fixture_and_predicts_like_the_original(fx: Fixtures, name: str, version: Version) -> None:
    old = fx.old(name, version)
    assert version_of(old) == vtext(version)
    assert fx.predictions(name, old) == fx.predictions(name, fx.reference(name, 0))


# --- vwmerge: read, write back, merge -----------------------------------------------------------
@pytest.mark.parametrize(("name", "version"), PARAMS)
def test_round_trip_and_merges(fx: Fixtures, name: str, version: Version, tmp_path: Path) -> None:
    old, other = fx.old(name, version, 0), fx.old(name, version, 1)
    ws = vwmerge.load(old)
    assert ws.header.version == version
    assert [e.name for e in ws.stack] == [e.name for e in vwmerge.load(fx.modern(name, 0)).stack]
    assert ws.to_bytes() == old.read_bytes()

    # Self-merge through the CLI: same version, and VW predicts as with the input.
    out = tmp_path / "self.model"
    done = cli("merge", "-o", out, old, old)
    assert done.returncode == 0, done.stderr
    assert version_of(out) == vtext(version)
    assert fx.predictions(name, out) == fx.predictions(name, old)

    # Two different old files (the CLI's merge function): the result is the merge of the two 9.x
    # references, in the old layout (VW predicts the same from both).
    out_old = tmp_path / "old.model"
    merge_files([old, other], out_old)
    assert version_of(out_old) == vtext(version)
    assert fx.predictions(name, out_old) == fx.predictions(name, fx.modern_merge(name))
    assert vwmerge.load(out_old).to_bytes() == out_old.read_bytes()


def test_cb_before_8_11_0_is_the_legacy_learner(fx: Fixtures, tmp_path: Path) -> None:
    """VW 9.11.9 adds --cb_force_legacy to --cb files before 8.11.0, also 8.0.3 <= version."""
    modern = fx.modern("cb-legacy", 0).read_bytes()
    m = of.split_modern(modern)
    relabelled = of.with_version(modern, (8, 10, 0))
    cut = len(relabelled) - len(m.body)
    header = of.split_modern(relabelled)  # same layout
    assert header.options == m.options and " --cb_force_legacy" in m.options
    # Drop the option from the header (re-encoded field by field: the checksum covers it).
    opt = m.options.replace(" --cb_force_legacy", "").encode() + b"\0"
    old_opt = m.options.encode() + b"\0"
    head = relabelled[:cut].replace(of.lp(old_opt), of.lp(opt))
    calls = [of.u32(1), b"\0", b"m", m.labels[:4], m.labels[4:], of.u32(m.bits), of.u32(m.lda), of.u32(0), of.u32(0)]
    calls += [of.u32(len(opt)), opt]
    checksum = 0
    for call in calls:
        checksum = of.murmur3(call, checksum)
    head = head[:-4] + of.u32(checksum)
    path = tmp_path / "cb.v8.10.0.model"
    path.write_bytes(head + resume((8, 10, 0), m.body))
    assert fx.predictions("cb-legacy", path) == fx.predictions("cb-legacy", fx.modern("cb-legacy", 0))
    ws = vwmerge.load(path)
    assert [e.name for e in ws.stack] == [e.name for e in vwmerge.load(fx.modern("cb-legacy", 0)).stack]
    assert "cb_force_legacy" not in ws.header.options_text
    assert ws.to_bytes() == path.read_bytes()


def test_inspect_shows_the_old_header(fx: Fixtures) -> None:
    done = cli("inspect", "--json", fx.old("gd-quadratic", (7, 10, 2)))
    assert done.returncode == 0, done.stderr
    assert '"7.10.2"' in done.stdout and '"interactions"' in done.stdout


# --- what VW 9.11.9 does with the old header fields ----------------------------------------------
def test_vw_does_not_use_header_pairs(fx: Fixtures, tmp_path: Path) -> None:
    """VW 9.11.9 copies a header pair with its buffer's NUL (an interaction a·b·namespace 0), so
    -q stored only as a pre-7.10.2 pair changes nothing: vwmerge keeps the bytes as they are."""
    modern = fx.modern("gd-quadratic", 0).read_bytes()
    m = of.split_modern(modern)
    options = m.options.replace(" --quadratic ab", "")
    body = resume((7, 10, 1), m.body)
    with_pair, without = tmp_path / "pair.model", tmp_path / "none.model"
    with_pair.write_bytes(of.old_header((7, 10, 1), m, options, pairs=(b"ab",)) + body)
    without.write_bytes(of.old_header((7, 10, 1), m, options) + body)
    assert fx.predictions("gd-quadratic", with_pair) == fx.predictions("gd-quadratic", without)
    assert fx.predictions("gd-quadratic", with_pair) != fx.predictions("gd-quadratic", fx.modern("gd-quadratic", 0))
    assert vwmerge.load(with_pair).header.pairs == (b"ab",)
    done = cli("merge", "-o", tmp_path / "out.model", with_pair, without)
    assert done.returncode == 1 and "the header's pairs differ ([] here, [ab] there)" in done.stderr


# --- mixed versions -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("first", "second"),
    [((8, 0, 2), None), ((8, 0, 1), (8, 0, 2)), ((7, 10, 2), (7, 10, 3)), ((7, 6, 0), (7, 10, 1))],
    ids=["8.0.2+9.11.9", "8.0.1+8.0.2", "7.10.2+7.10.3", "7.6.0+7.10.1"],
)
def test_inputs_read_differently_are_refused(
    fx: Fixtures, first: Version, second: Version | None, tmp_path: Path
) -> None:
    a = fx.old("gd", first)
    b = fx.old("gd", second, 1) if second else fx.modern("gd", 1)
    out = tmp_path / "out.model"
    done = cli("merge", "-o", out, a, b)
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert str(a) in lines[0] and str(b) in lines[0]
    assert vtext(first) in lines[0] and (vtext(second) if second else "9.11.9") in lines[0]
    assert "re-save both with the same VW" in lines[0]
    assert not out.exists()


def test_versions_read_alike_merge_and_keep_the_first_version(fx: Fixtures, tmp_path: Path) -> None:
    """7.10.3 and 8.0.0 files are read alike by VW 9.11.9 (no reader change between them)."""
    a, b = fx.old("gd", (7, 10, 3), 0), fx.old("gd", (8, 0, 0), 1)
    out, same = tmp_path / "mixed.model", tmp_path / "same.model"
    assert cli("merge", "-o", out, a, b).returncode == 0
    assert cli("merge", "-o", same, a, fx.old("gd", (7, 10, 3), 1)).returncode == 0
    assert version_of(out) == "7.10.3"
    assert out.read_bytes() == same.read_bytes()


@pytest.mark.parametrize("version", [(7, 6, 0), (8, 0, 1)], ids=vtext)
def test_base_mode_on_old_files(fx: Fixtures, version: Version, tmp_path: Path) -> None:
    """--base with old files: the same merge as of the 9.x originals, in the old layout."""
    old, modern = tmp_path / "old.model", tmp_path / "modern.model"
    merge_files([fx.old("gd", version, 1), fx.old("gd", version, 2)], old, base=fx.old("gd", version, 0))
    merge_files([fx.modern("gd", 1), fx.modern("gd", 2)], modern, base=fx.modern("gd", 0))
    assert version_of(old) == vtext(version)
    assert fx.predictions("gd", old) == fx.predictions("gd", modern)
    assert vwmerge.load(old).to_bytes() == old.read_bytes()


def test_base_of_another_layout_is_refused(fx: Fixtures, tmp_path: Path) -> None:
    out = tmp_path / "out.model"
    done = cli("merge", "-o", out, "--base", fx.modern("gd", 0), fx.old("gd", (8, 0, 2), 0), fx.old("gd", (8, 0, 2), 1))
    assert done.returncode == 1 and "8.0.2" in done.stderr and "9.11.9" in done.stderr
    assert not out.exists()


# --- versions and headers VW refuses ----------------------------------------------------------------
def _vw_refuses(path: Path) -> str:
    with pytest.raises(RuntimeError) as err:
        vowpalwabbit.Workspace(f"-i {path} --quiet", enable_logging=False).finish()
    return str(err.value)


def test_older_than_7_6_0_is_refused_like_vw(fx: Fixtures, tmp_path: Path) -> None:
    m = of.split_modern(fx.modern("gd", 0).read_bytes())
    path = tmp_path / "v7.5.9.model"
    path.write_bytes(of.old_header((7, 5, 9), m, m.options) + resume((7, 5, 9), m.body))
    assert "incompatible version" in _vw_refuses(path)
    done = cli("inspect", path)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [done.stderr.strip()]
    assert str(path) in done.stderr and "7.5.9" in done.stderr and "7.6.0" in done.stderr


@pytest.mark.parametrize("variant", ["wrong", "chained"])
def test_8_0_1_checksum_is_checked_like_vw(fx: Fixtures, tmp_path: Path, variant: str) -> None:
    """VW 9.11.9 checks an 8.0.1 checksum as one hash of the header bytes: a wrong one, or one
    chained over each field (the rule of later versions), is refused by VW and vwmerge alike."""
    good = fx.old("gd", (8, 0, 1)).read_bytes()
    m = of.split_modern(fx.modern("gd", 0).read_bytes())
    head = of.old_header((8, 0, 1), m, m.options)[:-8]
    if variant == "wrong":
        checksum = of.murmur3(head, 0) ^ 1
    else:
        checksum = 0
        calls = [head[:4], head[4:10], b"m", m.labels[:4], m.labels[4:], of.u32(m.bits), of.u32(m.lda)]
        calls += [of.u32(0), of.u32(0), of.u32(len(m.options) + 1), m.options.encode() + b"\0"]
        assert b"".join(calls) == head
        for call in calls:
            checksum = of.murmur3(call, checksum)
    path = tmp_path / f"{variant}.model"
    path.write_bytes(head + of.u32(4) + of.u32(checksum) + good[len(head) + 8 :])
    assert "Checksum" in _vw_refuses(path)
    with pytest.raises(vwmerge.ModelFormatError, match="bad header checksum"):
        vwmerge.load(path)


@pytest.mark.parametrize(
    ("field", "problem"),
    [("interaction-513", "interaction length 513"), ("pairs-2^30", "pair")],
)
def test_absurd_old_header_fields_are_refused(fx: Fixtures, tmp_path: Path, field: str, problem: str) -> None:
    m = of.split_modern(fx.modern("gd", 0).read_bytes())
    if field == "interaction-513":
        data = of.old_header((7, 10, 2), m, m.options, interactions=(b"a" * 513,))
    else:
        data = of.lp(b"7.10.1\0") + b"m" + m.labels + of.u32(m.bits) + of.u32(1 << 30)
    path = tmp_path / f"{field}.model"
    path.write_bytes(data + m.body)
    with pytest.raises(vwmerge.ModelFormatError, match=problem) as err:
        vwmerge.load(path)
    assert str(path) in str(err.value) and "\n" not in str(err.value)
