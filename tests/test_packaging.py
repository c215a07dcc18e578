"""Packaging choices users rely on: OpenCV is an extra (exactly one of [desktop], [headless], or the
user's own cv2), like ONNX Runtime; the install lines in the README and CI name one of each."""
from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path

import pytest

from novum.opencv import WHEELS

ROOT = Path(__file__).parents[1]
RUNTIMES = ("onnxruntime", "onnxruntime-gpu")


def requirement_name(req: str) -> str:
    return re.split(r"[\s<>=!~;\[]", req.strip(), maxsplit=1)[0].lower()


def test_opencv_and_onnxruntime_are_extras_only():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    core = {requirement_name(r) for r in project["dependencies"]}
    assert not core & set(WHEELS) and not core & set(RUNTIMES)      # bring-your-own cv2: pip installs none
    extras = {name: {requirement_name(r) for r in reqs} for name, reqs in project["optional-dependencies"].items()}
    assert extras["desktop"] == {"opencv-python"} and extras["headless"] == {"opencv-python-headless"}
    for name, reqs in extras.items():                                 # no other extra brings an OpenCV
        if name not in ("desktop", "headless"):
            assert not reqs & set(WHEELS), name


def test_installed_metadata_has_no_opencv_outside_the_extras():
    """What pip resolves for a plain `pip install novum` (the Jetson path): the installed metadata."""
    reqs = metadata.requires("novum") or []
    plain = [r for r in reqs if "extra ==" not in r]
    assert plain and not any(requirement_name(r) in WHEELS for r in plain), plain
    by_extra = {r.split("extra ==")[1].strip().strip("'\""): requirement_name(r) for r in reqs if "extra ==" in r}
    assert by_extra.get("desktop") == "opencv-python" and by_extra.get("headless") == "opencv-python-headless"


def install_lines(text: str) -> list[str]:
    """The ``pip install ... -e`` commands of a README or script (comments cut off)."""
    return [ln.split(" #")[0] for ln in text.splitlines() if re.search(r"pip install .*-e ", ln.split(" #")[0])]


def test_install_lines_pick_one_opencv():
    readme = install_lines((ROOT / "README.md").read_text())
    ci = install_lines((ROOT / ".ci" / "run").read_text())
    assert readme and ci
    for ln in readme + ci:                                          # one OpenCV, or none on the Jetson path
        assert ("desktop" in ln) + ("headless" in ln) == (0 if "numpy<2" in ln else 1), ln
    extras = lambda ln: set(re.search(r'-e "\.\[([^\]]*)\]"', ln).group(1).split(","))  # noqa: E731
    assert {"desktop", "cpu", "dev"} <= extras(readme[0])            # the quick start: a window on a desktop
    assert any({"headless", "cpu", "dev"} <= extras(ln) for ln in ci)   # CI: the headless OpenCV
    jetson = [ln for ln in readme if "[trt]" in ln and "numpy<2" in ln]
    assert jetson and not any(x in jetson[0] for x in ("desktop", "headless", "opencv"))


@pytest.mark.parametrize("entry, argv", [("novum.runtime.cli:main", ["--source", "demo", "--no-show"]),
                                         ("novum.runtime.cli:bench_main", []),
                                         ("novum.export.cli:main", []),
                                         ("novum.pose.cli:main", ["car.png"]),
                                         ("novum.data.cli:main", ["clip", "--out", "clip.mp4"])])
def test_no_opencv_is_a_one_line_error_naming_the_extras(entry, argv, tmp_path):
    """Installed without any OpenCV (no extra, no system cv2): the commands say what to install."""
    module, func = entry.split(":")
    code = (f"import sys; sys.modules['cv2'] = None\n"          # as if no cv2 were installed
            f"from {module} import {func}\nsys.exit({func}({argv!r}))\n")
    r = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    err = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(err) == 1, r.stderr[-2000:]
    assert err[0].startswith("error: OpenCV (cv2) cannot be imported") and "[desktop]" in err[0] and "[headless]" in err[0]
