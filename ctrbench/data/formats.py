"""Dataset formats: for each raw layout a config's ``format`` names, how to preprocess it and how
to write a synthetic file in that layout (the embedded default goes through the real reader)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ctrbench.data.criteo import DEFAULT_HASH_BINS
from ctrbench.data.preprocess import preprocess_criteo
from ctrbench.data.schema import DEFAULT_SEQUENCE_GROUP
from ctrbench.data.synthetic import write_synthetic_criteo
from ctrbench.data.synthetic_userbehavior import write_synthetic_userbehavior
from ctrbench.data.taobao_ad import preprocess_taobao_ad_dir
from ctrbench.data.userbehavior import BEHAVIORS, preprocess_userbehavior


@dataclass(frozen=True)
class DatasetFormat:
    preprocess: Callable[..., dict]  # (raw_path, outputs, dataset_name, options) -> manifest
    write_synthetic: Callable[..., dict] | None  # (path, rows, seed) -> facts about what was planted
    has_sequences: bool = False  # behaviour histories, which sequence models need
    history_groups: tuple[str, ...] = ()  # sequence groups stored by reference (training.history_max_len may set their length)
    # the raw input: one file, or a directory holding these files (the first two at least)
    directory_files: tuple[str, ...] = ()
    split_keys: tuple[str, ...] = ("train", "valid", "gold")  # what the dataset's ``splits`` may set
    options: tuple[str, ...] = ()  # the dataset config keys of this format (beyond config.COMMON_DATASET_KEYS)

    def path_problem(self, path: str | Path) -> str | None:
        """What is wrong with a configured raw ``path``, or None."""
        path = Path(path)
        if not self.directory_files:
            return None if path.is_file() else f"{str(path)!r} does not exist or is not a file"
        if not path.is_dir():
            return f"{str(path)!r} must be a directory holding {', '.join(self.directory_files)}"
        missing = [name for name in self.directory_files[:2] if not (path / name).is_file()]
        return f"{str(path)!r} lacks {', '.join(missing)}" if missing else None

    def raw_files(self, path: str | Path) -> list[str]:
        """The files a preprocessing job reads (its Snakemake inputs)."""
        if not self.directory_files:
            return [str(path)]
        return [str(Path(path) / name) for name in self.directory_files if (Path(path) / name).is_file()]


def _preprocess_criteo(raw_path: str | Path, outputs: dict, dataset_name: str, dataset: dict, progress: bool) -> dict:
    splits = dict(dataset["splits"])
    splits.setdefault("train", "rest")
    return preprocess_criteo(
        raw_path,
        outputs=outputs,
        dataset_name=dataset_name,
        hash_bins=dataset.get("hash_bins", DEFAULT_HASH_BINS),
        max_bad_rows=dataset.get("max_bad_rows", 0),
        splits=splits,
        split_seed=dataset.get("split_seed", 0),
        progress=progress,
        **dataset.get("reader", {}),
    )


def _preprocess_userbehavior(
    raw_path: str | Path, outputs: dict, dataset_name: str, dataset: dict, progress: bool
) -> dict:
    history = dataset.get("history") or {}
    targets = dataset.get("targets") or {}
    time_split = dataset.get("time_split") or {}
    return preprocess_userbehavior(
        raw_path,
        outputs=outputs,
        dataset_name=dataset_name,
        max_len=history.get("max_len", 50),
        history_behaviors=history.get("behaviors", BEHAVIORS),
        target_behaviors=targets.get("behaviors", BEHAVIORS),
        negatives=targets.get("negatives", 1),
        sampling=targets.get("sampling", "popularity"),
        valid_days=time_split.get("valid_days", 1),
        gold_days=time_split.get("gold_days", 1),
        utc_offset_hours=dataset.get("utc_offset_hours", 8),
        time_range=dataset.get("time_range"),
        max_bad_rows=dataset.get("max_bad_rows", 0),
        seed=dataset.get("split_seed", 0),
        user_fraction=dataset.get("user_fraction", 1.0),
        progress=progress,
    )


def _preprocess_taobao_ad(raw_path: str | Path, outputs: dict, dataset_name: str, dataset: dict, progress: bool) -> dict:
    # raw_path is a directory with train.csv, test.csv and optionally valid.csv (taobao_ad.raw_files)
    return preprocess_taobao_ad_dir(
        raw_path, outputs=outputs, dataset_name=dataset_name, dataset=dataset, progress=progress
    )


FORMATS: dict[str, DatasetFormat] = {
    "criteo_dac": DatasetFormat(
        preprocess=_preprocess_criteo, write_synthetic=write_synthetic_criteo, options=("hash_bins", "splits", "reader")
    ),
    "taobao_userbehavior": DatasetFormat(
        preprocess=_preprocess_userbehavior,
        write_synthetic=write_synthetic_userbehavior,
        has_sequences=True,
        history_groups=(DEFAULT_SEQUENCE_GROUP,),
        split_keys=(),  # split by time (time_split), not by fractions
        options=("history", "targets", "time_split", "time_range", "utc_offset_hours", "user_fraction", "splits"),
    ),
    "taobao_ad": DatasetFormat(
        preprocess=_preprocess_taobao_ad,
        write_synthetic=None,  # its raw input is a directory; tests call write_synthetic_taobao_ad directly
        has_sequences=True,
        directory_files=("train.csv", "test.csv", "valid.csv"),
        split_keys=("valid",),
        options=("hash_bins", "history", "splits"),
    ),
}
