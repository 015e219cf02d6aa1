"""Hashes, versions and the git commit that every result file carries."""

from __future__ import annotations

import hashlib
import json
import platform
import subprocess
from importlib import metadata
from pathlib import Path

import ctrbench

TRACKED_PACKAGES = ("torch", "numpy", "pyarrow", "scikit-learn", "snakemake", "transformers", "mamba-ssm", "flash-attn")


def sha256_file(path: str | Path, block_size: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(block_size):
            digest.update(chunk)
    return digest.hexdigest()


def sha256_json(value) -> str:
    """Hash of a JSON-able value, independent of key order."""
    return hashlib.sha256(json.dumps(value, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def package_versions(names: tuple[str, ...] = TRACKED_PACKAGES) -> dict[str, str]:
    versions = {"python": platform.python_version(), "ctrbench": ctrbench.__version__}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def git_commit(path: str | Path = ".") -> str | None:
    """The commit of the checkout the workflow runs from, with '-dirty' when it has local changes."""
    try:
        run = lambda *args: subprocess.run(
            ["git", *args], cwd=path, capture_output=True, text=True, check=True, timeout=10
        ).stdout.strip()
        commit = run("rev-parse", "HEAD")
        return commit + ("-dirty" if run("status", "--porcelain", "--untracked-files=no") else "")
    except (OSError, subprocess.SubprocessError):
        return None


def provenance() -> dict:
    return {"packages": package_versions(), "git_commit": git_commit(), "host": platform.node()}


def stamped(meta: dict) -> dict:
    """A result's identifying fields plus the provenance of the run that produced it."""
    return {**meta, "provenance": provenance()}
