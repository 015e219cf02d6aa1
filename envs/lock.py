"""envs/ctrbench.lock, read and rendered: pip requirements, conda env files and image names for one kind (cpu, gpu).

Standard library only: the Apptainer builds run it inside the base image before anything is installed.

    python3 envs/lock.py sync [--check]              write (or check) the conda env files derived from the lock
    python3 envs/lock.py requirements KIND [--build]  the pip requirements an image installs (--build: the ones
                                                     compiled from source with --no-build-isolation)
    python3 envs/lock.py check-base KIND             inside an image: its interpreter and base packages are the lock's
    python3 envs/lock.py check-installed KIND        inside an image or env: every locked package at its locked version
    python3 envs/lock.py image-name KIND             the versioned, hashed .sif file name of an image
    python3 envs/lock.py python KIND                 the interpreter's X.Y
"""

from __future__ import annotations

import argparse
import hashlib
import re
import sys
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
LOCK = HERE / "ctrbench.lock"
ROOT = HERE.parent  # the checkout (in an image build: /opt/ctrbench)

SECTIONS = ("common", "torch-deps", "cpu", "gpu-base", "gpu", "gpu-build")


@dataclass(frozen=True)
class Kind:
    name: str
    image_base: tuple[str, ...]  # checked in the image, never installed
    image_install: tuple[str, ...]  # pip install --no-deps
    image_build: tuple[str, ...]  # pip install --no-deps --no-build-isolation (CUDA extensions)
    conda_pip: tuple[str, ...]  # the conda env's pip section
    conda_post_deploy: tuple[str, ...]  # built by the env's post-deploy script


KINDS = {
    "cpu": Kind("cpu", (), ("common", "torch-deps", "cpu"), (), ("common", "torch-deps", "cpu"), ()),
    "gpu": Kind(
        "gpu",
        ("gpu-base",),
        ("common", "gpu"),
        ("gpu-build",),
        ("common", "torch-deps", "gpu-base", "gpu"),
        ("gpu-build",),
    ),
}

# conda env files written by `sync`, per kind: the env file, and the post-deploy script where there is one
CONDA_FILES = {
    "cpu": ("ctrbench.yaml", None),
    "gpu": ("ctrbench-gpu.yaml", "ctrbench-gpu.post-deploy.sh"),
}

# CUDA extensions: the variable that makes each one build from source instead of fetching a prebuilt wheel
FORCE_BUILD = {
    "causal-conv1d": "CAUSAL_CONV1D_FORCE_BUILD",
    "mamba-ssm": "MAMBA_FORCE_BUILD",
    "flash-attn": "FLASH_ATTENTION_FORCE_BUILD",
}

PIN = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)==(?P<version>[A-Za-z0-9.+*!_-]+)$")
OPTION = re.compile(r"^--(extra-index-url|index-url|find-links) \S+$")


def canonical(name: str) -> str:
    """PEP 503 normalised package name."""
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclass(frozen=True)
class Line:
    text: str  # the requirement line as written (comment stripped)
    name: str | None = None  # canonical name of a pin; None for a pip option
    version: str | None = None

    @property
    def is_python(self) -> bool:
        return self.name == "python"


class LockError(ValueError):
    pass


def parse(text: str) -> dict[str, list[Line]]:
    """Sections of the lock, each a list of pins (name==version) and pip options, in file order."""
    sections: dict[str, list[Line]] = {}
    current = None
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if line.startswith("[") and line.endswith("]"):
            current = line[1:-1].strip()
            if current not in SECTIONS:
                raise LockError(f"line {number}: unknown section [{current}] (known: {', '.join(SECTIONS)})")
            if current in sections:
                raise LockError(f"line {number}: section [{current}] appears twice")
            sections[current] = []
            continue
        if current is None:
            raise LockError(f"line {number}: {line!r} is outside any [section]")
        if OPTION.match(line):
            sections[current].append(Line(line))
            continue
        pin = PIN.match(line)
        if not pin:
            raise LockError(f"line {number}: {line!r} is not an exact pin name==version (nor a pip index option)")
        name, version = canonical(pin["name"]), pin["version"]
        if name == "python":
            if not re.fullmatch(r"\d+\.\d+\.\*", version):
                raise LockError(f"line {number}: the interpreter is pinned as python==X.Y.*, not {version!r}")
        elif "*" in version:
            raise LockError(f"line {number}: {line!r}: packages are pinned exactly, without wildcards")
        sections[current].append(Line(line, name, version))
    missing = [s for s in SECTIONS if s not in sections]
    if missing:
        raise LockError(f"the lock has no section(s) {missing}")
    for kind in KINDS.values():
        for group in (kind.image_base + kind.image_install + kind.image_build, kind.conda_pip + kind.conda_post_deploy):
            seen: dict[str, str] = {}
            for section in group:
                for entry in sections[section]:
                    if entry.name and entry.name in seen:
                        raise LockError(
                            f"{kind.name}: {entry.name} is pinned in both [{seen[entry.name]}] and [{section}]"
                        )
                    if entry.name:
                        seen[entry.name] = section
            pythons = [e for s in group for e in sections[s] if e.is_python]
            if len(pythons) != 1:
                raise LockError(f"{kind.name}: needs exactly one python==X.Y.* line, found {len(pythons)}")
    return sections


def load(path: Path = LOCK) -> dict[str, list[Line]]:
    return parse(path.read_text())


def _lines(lock, sections) -> list[Line]:
    return [entry for section in sections for entry in lock[section]]


def pins(kind: str, lock=None) -> dict[str, str]:
    """Every exact version that belongs to a kind (its image's base, installs and builds), python included."""
    lock = lock or load()
    k = KINDS[kind]
    return {e.name: e.version for e in _lines(lock, k.image_base + k.image_install + k.image_build) if e.name}


def python_version(kind: str, lock=None) -> str:
    """The interpreter's X.Y."""
    return pins(kind, lock)["python"].removesuffix(".*")


def requirements(kind: str, build: bool = False, lock=None) -> str:
    """The pip requirements file an image installs (pip options kept, python left out)."""
    lock = lock or load()
    k = KINDS[kind]
    lines = [e.text for e in _lines(lock, k.image_build if build else k.image_install) if not e.is_python]
    return "".join(line + "\n" for line in lines)


def conda_env(kind: str, lock=None) -> str:
    """The conda env file of a kind: conda-forge's interpreter, everything else from the lock through pip."""
    lock = lock or load()
    k = KINDS[kind]
    entries = _lines(lock, k.conda_pip)
    python = next(e for e in entries if e.is_python).version.removesuffix(".*")
    options = sorted({e.text for e in entries if e.name is None})  # pip options apply file-wide
    packages = [e.text for e in entries if e.name and not e.is_python]
    lines = [
        "# GENERATED from envs/ctrbench.lock by `python3 envs/lock.py sync`: edit the lock, not this file.",
        f"# The {kind.upper()} software of the workflow's jobs for `snakemake --software-deployment-method conda`.",
        "# The ctrbench package itself is not installed: the jobs import it from the workflow's checkout",
        "# (workflow_scripts/_source_tree.py).",
    ]
    if k.conda_post_deploy:
        lines.append(f"# Then {CONDA_FILES[kind][1]} compiles the CUDA extensions (needs a CUDA toolkit with nvcc).")
    lines += [
        "channels:",
        "  - conda-forge",
        "  - nodefaults",
        "dependencies:",
        f"  - python={python}",
        "  - pip",
        "  - pip:",
    ]
    lines += [f"      - {text}" for text in options + packages]
    return "\n".join(lines) + "\n"


def build_command(kind: str, lock=None, python: str = "python3") -> str:
    """The pip command that compiles a kind's CUDA extensions against the torch already installed."""
    lock = lock or load()
    entries = [e for e in _lines(lock, KINDS[kind].image_build) if e.name]
    force = " ".join(f"{FORCE_BUILD[e.name]}=TRUE" for e in entries if e.name in FORCE_BUILD)
    specs = " ".join(e.text for e in entries)
    return f"{force} {python} -m pip install --no-cache-dir --no-deps --no-build-isolation {specs}".strip()


def post_deploy(kind: str, lock=None) -> str | None:
    lock = lock or load()
    if not KINDS[kind].conda_post_deploy:
        return None
    return "\n".join(
        [
            "#!/usr/bin/env bash",
            "# GENERATED from envs/ctrbench.lock by `python3 envs/lock.py sync`: edit the lock, not this file.",
            "# Snakemake runs it once, inside the new env, after creating envs/ctrbench-gpu.yaml's env: it compiles the",
            "# CUDA extensions against the env's torch (pip --no-build-isolation; *_FORCE_BUILD: never a prebuilt wheel).",
            "# Needs nvcc of CUDA 13.0 (CUDA_HOME, or nvcc on PATH); TORCH_CUDA_ARCH_LIST and MAX_JOBS are honoured.",
            "set -euo pipefail",
            'export TORCH_CUDA_ARCH_LIST="${TORCH_CUDA_ARCH_LIST:-8.0;9.0}"',
            'export FLASH_ATTN_CUDA_ARCHS="${FLASH_ATTN_CUDA_ARCHS:-80;90}"',
            'export MAX_JOBS="${MAX_JOBS:-4}"',
            build_command(kind, lock, python="python"),
            "",
        ]
    )


def image_name(kind: str, root: Path = ROOT, lock_path: Path | None = None) -> str:
    """`ctrbench-<kind>-py<X.Y>-torch<version>-<hash>.sif`: the hash covers the image's definition file and what the
    lock says for this kind, so any change to either names a new image and a stale one is never reused."""
    lock_path = lock_path or root / "envs" / "ctrbench.lock"
    lock = load(lock_path)
    k = KINDS[kind]
    definition = (root / "containers" / f"ctrbench-{kind}.def").read_bytes()
    locked = "".join(e.text + "\n" for e in _lines(lock, k.image_base + k.image_install + k.image_build))
    digest = hashlib.sha256(definition + b"\0" + locked.encode()).hexdigest()[:12]
    torch = pins(kind, lock)["torch"].replace("+", "-")
    return f"ctrbench-{kind}-py{python_version(kind, lock)}-torch{torch}-{digest}.sif"


def _installed(names) -> dict[str, str | None]:
    from importlib import metadata

    versions = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def mismatches(wanted: dict[str, str]) -> list[str]:
    """What the running interpreter has that differs from `wanted` (name -> exact version, python as X.Y.*)."""
    problems = []
    wanted = dict(wanted)
    python = wanted.pop("python", None)
    running = "{}.{}".format(*sys.version_info[:2])
    if python and python.removesuffix(".*") != running:
        problems.append(f"python: locked {python}, running {running} ({sys.executable})")
    for name, have in _installed(wanted).items():
        if have != wanted[name]:
            problems.append(f"{name}: locked {wanted[name]}, installed {have or 'nothing'}")
    return problems


def sync(check: bool = False, directory: Path = HERE) -> list[str]:
    """Write the conda files derived from the lock; with check, only list those that are stale."""
    lock = load(directory / "ctrbench.lock")
    stale = []
    for kind, (env_file, deploy_file) in CONDA_FILES.items():
        for name, text in ((env_file, conda_env(kind, lock)), (deploy_file, post_deploy(kind, lock))):
            if name is None:
                continue
            path = directory / name
            if not path.exists() or path.read_text() != text:
                stale.append(name)
                if not check:
                    path.write_text(text)
                    if name.endswith(".sh"):
                        path.chmod(0o755)
    return stale


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    sync_parser = sub.add_parser("sync")
    sync_parser.add_argument("--check", action="store_true")
    for command in ("requirements", "check-base", "check-installed", "image-name", "python"):
        sub_parser = sub.add_parser(command)
        sub_parser.add_argument("kind", choices=sorted(KINDS))
        if command == "requirements":
            sub_parser.add_argument("--build", action="store_true")
    args = parser.parse_args(argv)

    if args.command == "sync":
        stale = sync(check=args.check)
        for name in stale:
            print(f"{'stale' if args.check else 'wrote'}: envs/{name}", file=sys.stderr)
        return 1 if args.check and stale else 0
    if args.command == "requirements":
        sys.stdout.write(requirements(args.kind, build=args.build))
    elif args.command == "python":
        print(python_version(args.kind))
    elif args.command == "image-name":
        print(image_name(args.kind))
    else:
        lock = load()
        k = KINDS[args.kind]
        sections = k.image_base if args.command == "check-base" else k.image_base + k.image_install + k.image_build
        wanted = {e.name: e.version for e in _lines(lock, sections) if e.name}
        if args.command == "check-base":
            wanted.setdefault("python", pins(args.kind, lock)["python"])
        problems = mismatches(wanted)
        for problem in problems:
            print(f"ctrbench.lock ({args.kind}): {problem}", file=sys.stderr)
        if problems:
            return 1
        print(f"ctrbench.lock ({args.kind}): {len(wanted)} pins match")
    return 0


if __name__ == "__main__":
    sys.exit(main())
