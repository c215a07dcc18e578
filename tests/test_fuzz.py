"""Bounded, seeded fuzzing of every file format novum reads (issue 14).

Each test mutates a valid file (tests/fuzzing.py: bit flips, truncation, inserted bytes, swapped
fields, extreme numbers, wrong types, huge lists and strings) and reads every case the way novum
does (tests/fuzz_targets.py). Every case must end in a correct result or in one NovumError line,
within the time bound, with no traceback, hang, crash or file left behind. CI runs a few hundred
cases in total; ``-m slow`` runs ten times as many with other seeds. A crash found here becomes a
case in tests/test_untrusted.py.
"""
from __future__ import annotations

import pytest

import fuzz_targets as T
import fuzzing as F

SLOW = 10                      # the slow run: ten times the CI cases, other seeds
IN_PROCESS_BOUND = 5.0         # seconds one case of a pure-Python reader may take
CHILD_BOUND = 20.0             # seconds one case of a native reader may take (the child is killed after)


def _check(report: F.Report, bound: float) -> None:
    print(report.summary())
    assert not report.bugs, report.failure()
    slow = [r for r in report.results if r.seconds > bound]
    assert not slow, f"{report.fmt}: {len(slow)} cases over {bound}s, e.g. [{slow[0].mutation}] {slow[0].seconds:.1f}s"
    assert report.count("error") > 0, f"{report.fmt}: no case was refused: the mutations do not reach the reader"


# every fuzz test runs at the CI scale, and again at the slow scale under ``-m slow``
SCALES = pytest.mark.parametrize("slow", [False, pytest.param(True, marks=pytest.mark.slow)], ids=["ci", "long"])


def _scale(n: int, slow: bool) -> tuple[int, int]:
    """(cases, rng seed) of a run."""
    return (n * SLOW, 1000 + n) if slow else (n, n)


def _leftovers(before: set, workdir) -> list:
    return sorted(str(p) for p in workdir.iterdir() if p.name not in before)


# ----------------------------------------------------------------------------------------------
# native parsers: each case in a child process (a crash or a hang is caught and reported)

BYTE_FORMATS = {
    # format: (CI cases, target, suffix)
    "safetensors": (50, "native_checkpoint", ".safetensors"),
    "pth": (30, "upstream_checkpoint", ".pth"),        # 7 MB cases (the layout's bank)
    "onnx": (50, "onnx_model", ".onnx"),
    "png": (30, "image_file", ".png"),
    "jpg": (30, "image_file", ".jpg"),
    "mp4": (30, "video_file", ".mp4"),
}


def _byte_seed(fmt: str):
    """(seed bytes, seed file or None, hot region)."""
    if fmt == "safetensors":
        path = T.tiny_native()
        data = path.read_bytes()
        return data, path, (0, 8 + int.from_bytes(data[:8], "little"))   # the JSON header gets half of the hits
    if fmt == "pth":
        path = T.tiny_upstream_pth()
        return path.read_bytes(), path, None
    if fmt == "onnx":
        path = T.tiny_onnx()
        data = path.read_bytes()
        k = data.find(b"novum_config")
        return data, path, (max(0, k - 64), len(data))                  # metadata_props sit at the end
    if fmt == "mp4":
        return T.seed_video(), None, None
    return T.seed_image(fmt), None, (0, 64)


def _run_bytes(fmt: str, slow: bool, tmp_path) -> None:
    n, target, suffix = BYTE_FORMATS[fmt]
    n, seed = _scale(n, slow)
    data, seed_file, hot = _byte_seed(fmt)
    cases = F.cases_from(data, n, seed, hot)
    report = F.run_in_child(fmt, cases, f"fuzz_targets:{target}", tmp_path, suffix, CHILD_BOUND, T.child_env(), seed_file)
    assert len(report.results) == n
    assert _leftovers({"cases.json"}, tmp_path) == []
    _check(report, CHILD_BOUND)


@SCALES
@pytest.mark.parametrize("fmt", list(BYTE_FORMATS))
def test_fuzz_file_bytes(fmt, slow, tmp_path):
    _run_bytes(fmt, slow, tmp_path)


def _run_onnx_metadata(slow: bool, tmp_path) -> None:
    """Value-level mutations of an export's metadata_props, written into the ONNX file and opened
    as novum-run opens it (ONNX Runtime, one frame)."""
    n, seed = _scale(40, slow)
    cases = T.onnx_metadata_cases(n, seed)
    report = F.run_in_child("onnx metadata", cases, "fuzz_targets:onnx_model", tmp_path, ".onnx", CHILD_BOUND,
                            T.child_env(), T.tiny_onnx())
    _check(report, CHILD_BOUND)


@SCALES
def test_fuzz_onnx_metadata(slow, tmp_path):
    _run_onnx_metadata(slow, tmp_path)


# ----------------------------------------------------------------------------------------------
# JSON files read by pure Python: in this process

JSON_FORMATS = {
    # format: (CI cases, seed object, target)
    "sidecar": (150, T.seed_sidecar, T.sidecar_file),
    "calibration cache": (150, T.seed_cache, T.cache_file),
    "novum_dataset.json": (100, T.seed_dataset_meta, T.dataset_meta_file),
    "checkpoint config": (100, T.seed_model_config, T.model_config_text),
}


def _run_json(fmt: str, slow: bool, tmp_path) -> None:
    n, seed_fn, target = JSON_FORMATS[fmt]
    n, seed = _scale(n, slow)
    obj = seed_fn()
    target(T.write_json(tmp_path / "seed.json", obj))            # the seed itself reads correctly
    cases = F.json_cases(obj, n, seed)
    before = {p.name for p in tmp_path.iterdir()}
    report = F.run_in_process(fmt, cases, target, tmp_path, ".json", case_timeout=60.0)
    assert _leftovers(before, tmp_path) == []
    _check(report, IN_PROCESS_BOUND)


@SCALES
@pytest.mark.parametrize("fmt", list(JSON_FORMATS))
def test_fuzz_json_files(fmt, slow, tmp_path):
    _run_json(fmt, slow, tmp_path)


def test_mutations_are_seeded():
    """The same seed gives the same cases (a failure found is reproducible by its index)."""
    data = T.seed_image("png")
    assert F.cases_from(data, 20, 7, (0, 64)) == F.cases_from(data, 20, 7, (0, 64))
    obj = T.seed_sidecar()
    assert F.json_cases(obj, 20, 7) == F.json_cases(obj, 20, 7)
    assert F.json_cases(obj, 20, 7) != F.json_cases(obj, 20, 8)
