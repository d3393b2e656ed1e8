"""scripts/offline_wheels.py: wheels packed in pieces, re-assembled and installed on a host
without internet (real wheels built here, real pip)."""

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from arena.testing.appserver import ROOT

SCRIPT = str(ROOT / "scripts" / "offline_wheels.py")


def make_wheel(tmp: Path, name: str, payload: int) -> Path:
    """A real wheel of a one-module package carrying `payload` random (incompressible) bytes."""
    src = tmp / f"src-{name}"
    (src / name).mkdir(parents=True)
    (src / name / "__init__.py").write_text(f"VALUE = {name!r}\n")
    (src / name / "blob.bin").write_bytes(os.urandom(payload))
    (src / "setup.py").write_text(
        "from setuptools import setup\n"
        f"setup(name={name!r}, version='1.0', packages=[{name!r}], package_data={{{name!r}: ['blob.bin']}})\n")
    out = tmp / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(out),
                    str(src)], check=True, capture_output=True)
    return next(out.glob(f"{name}-*.whl"))


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, SCRIPT, *args], capture_output=True, text=True)


@pytest.fixture(scope="module")
def wheels(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("wheels")
    make_wheel(tmp, "arenabig", 700_000)  # larger than a 0.5 MB piece
    make_wheel(tmp, "arenasmall", 100_000)
    return tmp / "wheels"


def test_pieces_round_trip_to_the_same_wheels_and_install(wheels, tmp_path):
    packed = tmp_path / "offline"
    done = run("pack", "--wheels", str(wheels), "--out", str(packed), "--piece-mb", "0.5", "--split-large")
    assert done.returncode == 0, done.stderr
    pieces = sorted(packed.glob("piece-*"))
    assert len(pieces) >= 2
    assert all(sum(f.stat().st_size for f in p.iterdir() if f.name != "MANIFEST.json") <= 0.5 * 2**20 for p in pieces)

    # only the first piece arrived: nothing split is installed yet, and the script says what is missing
    host = tmp_path / "host"
    (host / pieces[0].name).parent.mkdir(parents=True)
    os.symlink(pieces[0], host / pieces[0].name)
    target = tmp_path / "site"
    first = run("install", str(host), "--target", str(target))
    assert first.returncode == 0, first.stderr
    assert "waiting for arenabig" in first.stdout

    # as on a machine that keeps only what the last copy brought: the first piece is gone when the
    # others arrive, and a wheel split over pieces still assembles from the parts install kept
    (host / pieces[0].name).unlink()
    for p in pieces[1:]:
        os.symlink(p, host / p.name)
    second = run("install", str(host), "--target", str(target))
    assert second.returncode == 0, second.stderr
    assert "2 of 2 wheels installed" in second.stdout

    os.symlink(pieces[0], host / pieces[0].name)
    again = tmp_path / "assembled"  # re-assembled from its parts: the same bytes
    assert run("assemble", str(host), "--into", str(again)).returncode == 0
    assert {w.name: digest(w) for w in again.glob("*.whl")} == {w.name: digest(w) for w in wheels.glob("*.whl")}
    probe = subprocess.run([sys.executable, "-c", "import arenabig, arenasmall, pathlib;"
                            "print(arenabig.VALUE, len((pathlib.Path(arenabig.__file__).parent / 'blob.bin').read_bytes()))"],
                           env={**os.environ, "PYTHONPATH": str(target)}, capture_output=True, text=True)
    assert probe.stdout.split() == ["arenabig", "700000"], probe.stderr
    assert list((target / "arenabig" / "__pycache__").glob("*.pyc"))  # .pyc written at install


def test_a_piece_smaller_than_the_largest_wheel_is_refused_with_its_name(wheels, tmp_path):
    done = run("pack", "--wheels", str(wheels), "--out", str(tmp_path / "offline"), "--piece-mb", "0.5")
    assert done.returncode != 0
    assert "cannot hold arenabig-1.0" in done.stderr and "--split-large" in done.stderr
    assert not list((tmp_path / "offline").glob("piece-*"))


def test_a_damaged_piece_is_refused_not_installed(wheels, tmp_path):
    packed = tmp_path / "offline"
    assert run("pack", "--wheels", str(wheels), "--out", str(packed), "--piece-mb", "0.5", "--split-large").returncode == 0
    part = next(packed.glob("piece-*/arenabig-*.part*"))
    data = bytearray(part.read_bytes())
    data[100] ^= 0xFF
    part.write_bytes(bytes(data))
    done = run("install", str(packed), "--target", str(tmp_path / "site"))
    assert done.returncode != 0 and "does not match its sha256" in done.stderr
