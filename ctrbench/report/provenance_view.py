"""The report's provenance section: commits, hosts, devices, package versions, gold files and model details,
each value listed with the results that carry it, so that disagreements show."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from ctrbench.report.entries import ResultEntry, info_text
from ctrbench.report.formatting import format_duration
from ctrbench.results import Provenance


@dataclass
class Distinct:
    """One value seen in the results and which results carry it."""

    value: str
    sources: list[str]


def _distinct(pairs: Iterable[tuple[Any, str]]) -> list[Distinct]:
    grouped: dict[str, list[str]] = {}
    for value, source in pairs:
        grouped.setdefault("unknown" if value in (None, "") else str(value), []).append(source)
    return [Distinct(value, list(dict.fromkeys(sources))) for value, sources in grouped.items()]


def _provenances(entry: ResultEntry) -> list[tuple[Provenance, str]]:
    """Training and evaluation run separately, so each record's provenance counts."""
    return [(entry.train.provenance, f"{entry.label} train"), (entry.gold.provenance, f"{entry.label} eval")]


def _device_text(device: str, name: str) -> str:
    return f"{device} ({name})" if name and name != device else device


def _train_device(entry: ResultEntry) -> str:
    cost = entry.cost
    processes = f", {cost.processes} processes" if cost.processes > 1 else ""
    return _device_text(cost.device, cost.device_name) + processes


def _model_info_view(entries: Sequence[ResultEntry]) -> list[tuple[str, list[Distinct], bool]]:
    """Per model_info key: its distinct values with the results that carry them, and whether every
    result has that key. The evaluation's copy (from the checkpoint) is listed only where it differs."""
    keys = list(dict.fromkeys(key for e in entries for key in [*e.train.model_info, *e.model_info]))
    view = []
    for key in keys:
        pairs = []
        for entry in entries:
            train, gold = entry.train.model_info, entry.gold.model_info
            if key in train:
                pairs.append((info_text(train[key]), entry.label))
            if key in gold and (key not in train or info_text(gold[key]) != info_text(train[key])):
                pairs.append((info_text(gold[key]), f"{entry.label} eval (checkpoint)"))
        carried = {entry.label for entry in entries if key in entry.model_info}
        view.append((key, _distinct(pairs), len(carried) == len(entries)))
    return view


def provenance_view(entries: Sequence[ResultEntry], sections: Sequence) -> dict:
    stamps = [(prov, source) for entry in entries for prov, source in _provenances(entry)]
    package_names = list(dict.fromkeys(name for prov, _ in stamps for name in prov.packages))
    return {
        "commits": _distinct((prov.git_commit, source) for prov, source in stamps),
        "hosts": _distinct((prov.host, source) for prov, source in stamps),
        "train_devices": _distinct((_train_device(e), e.label) for e in entries),
        "eval_devices": _distinct((e.gold.device, e.label) for e in entries),
        "precisions": _distinct((f"train {e.cost.precision}, eval {e.gold.precision}", e.label) for e in entries),
        "packages": [
            (name, _distinct((prov.packages.get(name), source) for prov, source in stamps if name in prov.packages))
            for name in package_names
        ],
        "gold_files": [(s.name, s.gold_sha256, s.gold_rows) for s in sections if s.gold_sha256],
        "model_info": _model_info_view(entries),
        "results": [
            {
                "label": entry.label,
                "commit": entry.train.provenance.git_commit,
                "config_sha256": entry.train.config_sha256,
                "checkpoint_sha256": entry.gold.checkpoint_sha256,
                "train_device": _train_device(entry),
                "eval_device": entry.gold.device,
                "eval_seconds": format_duration(entry.gold.eval_seconds),
            }
            for entry in entries
        ],
    }
