"""novum.io: atomic writes leave nothing half-written and create files like any other tool (umask)."""
from __future__ import annotations

import os
import stat

import pytest

from novum.io import atomic_path, atomic_write_text


def mode(p) -> int:
    return stat.S_IMODE(os.stat(p).st_mode)


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_atomic_writes_respect_the_umask(tmp_path, umask):
    old = os.umask(umask)
    try:
        atomic_write_text(tmp_path / "a.json", "{}")
        with atomic_path(tmp_path / "b.npz") as tmp:
            tmp.write_bytes(b"x")
        plain = tmp_path / "plain.txt"
        plain.write_text("x")                                        # what open() gives, for comparison
    finally:
        os.umask(old)
    assert mode(tmp_path / "a.json") == mode(tmp_path / "b.npz") == mode(plain) == 0o666 & ~umask


def test_overwrite_keeps_the_existing_mode_and_failure_leaves_the_old_file(tmp_path):
    p = tmp_path / "m.safetensors"
    p.write_text("old")
    os.chmod(p, 0o640)
    atomic_write_text(p, "new")
    assert p.read_text() == "new" and mode(p) == 0o640
    with pytest.raises(RuntimeError):
        with atomic_path(p) as tmp:
            tmp.write_text("half")
            raise RuntimeError("writer failed")
    assert p.read_text() == "new" and sorted(q.name for q in tmp_path.iterdir()) == ["m.safetensors"]
