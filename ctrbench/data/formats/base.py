"""What a dataset format is to the workflow, and its options.

A format is a package under ``ctrbench/data/formats/`` (reader, preprocessing, synthetic generator) with an
``options.yaml``: the one place that says which dataset-config keys the format takes, their types and their
defaults. ``config/schema.yaml`` composes these fragments by ``format``, so the workflow validates a dataset
entry against them; ``FormatOptions.resolve`` validates and fills the same defaults for a direct call.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from jsonschema import ValidationError
from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

from ctrbench.schema_problem import schema_problem


class OptionsError(ValueError):
    """Options a format does not take, or values its options.yaml refuses."""


def _fragment(path: Path) -> dict:
    return yaml.safe_load(path.read_text(encoding="utf-8"))["$defs"]["options"]


def _property_names(path: Path) -> list[str]:
    """The keys of a fragment's ``$defs/options`` and of the fragments it refers to."""
    options = _fragment(path)
    names = list(options.get("properties", {}))
    if ref := options.get("$ref"):
        names += _property_names((path.parent / ref.split("#")[0]).resolve())
    return names


@dataclass(frozen=True)
class FormatOptions:
    schema: Path  # the format's options.yaml

    @functools.cached_property
    def names(self) -> tuple[str, ...]:
        return tuple(sorted(_property_names(self.schema)))

    def of_entry(self, entry: Mapping) -> dict:
        """This format's options out of a dataset-config entry (which also holds format, path, models, ...)."""
        return {key: value for key, value in entry.items() if key in self.names}

    def resolve(self, given: Mapping) -> dict:
        """``given`` checked against options.yaml, with its defaults filled in (a new dict)."""
        if unknown := sorted(set(given) - set(self.names)):
            raise OptionsError(
                f"{self.schema.parent.name} takes no option {', '.join(unknown)}; it takes {', '.join(self.names)}"
            )
        options = copy.deepcopy(dict(given))
        try:
            validate(options, str(self.schema))  # Snakemake's own validation, defaults included, as in the workflow
        except WorkflowError as error:
            if not isinstance(error.__context__, ValidationError):
                raise
            raise OptionsError(f"{self.schema.parent.name} options: {schema_problem(error.__context__)}") from None
        return options


@dataclass(frozen=True)
class DirectoryFile:
    """Files of a directory input: a glob ``pattern`` inside the directory (a plain name matches itself); a
    ``required`` kind must match at least one file."""

    pattern: str
    required: bool = True

    def matches(self, directory: Path) -> list[Path]:
        """The files it matches, in name order."""
        return sorted(p for p in directory.glob(self.pattern) if p.is_file())


@dataclass(frozen=True)
class DatasetFormat:
    name: str
    options: FormatOptions
    # (raw_path, *, outputs, dataset_name, options, progress) -> the manifest as written (manifest.DataManifest)
    preprocess: Callable[..., dict]
    write_synthetic: Callable[..., dict] | None  # (path, rows, seed) -> facts about what was planted
    # other generators by profile name (config: synthetic.profile), each as write_synthetic
    synthetic_profiles: Mapping[str, Callable[..., dict]] = field(default_factory=dict)
    has_sequences: bool = False  # behaviour histories, which sequence models need
    # the sequence groups stored by reference, given the resolved options (training.history_max_len may set their length)
    history_groups: Callable[[Mapping], tuple[str, ...]] = field(default=lambda options: ())
    # the raw input: one file, or a directory holding files of these kinds
    directory_files: tuple[DirectoryFile, ...] = ()
    # what a schema cannot say about the options (resolved, defaults filled), as messages
    option_problems: Callable[[Mapping], list[str]] = field(default=lambda options: [])

    def synthetic_writer(self, profile: str = "default") -> Callable[..., dict]:
        """The generator of a synthetic ``profile`` ("default": ``write_synthetic``); raises naming the known ones."""
        if profile == "default" and self.write_synthetic is not None:
            return self.write_synthetic
        if profile not in self.synthetic_profiles:
            known = (["default"] if self.write_synthetic else []) + list(self.synthetic_profiles)
            raise ValueError(
                f"format {self.name!r} has no synthetic profile {profile!r} (it has: {', '.join(known) or 'none'})"
            )
        return self.synthetic_profiles[profile]

    def path_problem(self, path: str | Path) -> str | None:
        """What is wrong with a configured raw ``path``, or None."""
        path = Path(path)
        if not self.directory_files:
            return None if path.is_file() else f"{str(path)!r} does not exist or is not a file"
        required = [f.pattern for f in self.directory_files if f.required]
        if not path.is_dir():
            return f"{str(path)!r} must be a directory holding {', '.join(required)}"
        missing = [f.pattern for f in self.directory_files if f.required and not f.matches(path)]
        return f"{str(path)!r} lacks {', '.join(missing)}" if missing else None

    def raw_files(self, path: str | Path) -> list[str]:
        """The files a preprocessing job reads (its Snakemake inputs), kind by kind."""
        if not self.directory_files:
            return [str(path)]
        return [str(p) for f in self.directory_files for p in f.matches(Path(path))]
