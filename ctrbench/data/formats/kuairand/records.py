"""What a KuaiRand preprocessing run writes about its outputs: the feature map and the manifest."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from ctrbench.data.formats.kuairand.events import LoggedEvents
from ctrbench.data.formats.kuairand.features import FeatureTables
from ctrbench.data.formats.kuairand.layout import BEHAVIOR_LABELS, USER_FEATURES
from ctrbench.data.formats.kuairand.logs import LogFile
from ctrbench.data.formats.kuairand.samples import TIME_COLUMN, SampleWriter
from ctrbench.data.formats.kuairand.sides import SideFile
from ctrbench.data.manifest import DataManifest, InputFile, RowCounts, SplitTimes
from ctrbench.data.outputs import StagedOutputs
from ctrbench.data.raw_input import input_file
from ctrbench.data.reading import BadRows
from ctrbench.data.schema import ROW_ID, Feature, FeatureMap, SequenceGroup, Task
from ctrbench.data.splits import SPLITS
from ctrbench.provenance import package_versions

FEATURE_NOTES = {
    "ids": "categorical id 0 = missing / padding; user_id, video_id: 1 + rank of the raw id among the distinct raw "
    "ids of the run's logs; author_id, music_id: 1 + rank among the raw ids of the logged videos' basic features",
    "user_features": "tokens (user_active_degree, *_range) -> 1 + rank of the string; codes (is_*, onehot_feat*) -> "
    "1 + rank of the whole number; -124 (the release's missing code) and empty values -> 0. The counts "
    "follow_user_num, fans_user_num, friend_user_num and register_days enter as the release's *_range buckets",
    "video_features": "video_type, upload_type, tag (the first of the list) -> 1 + rank of the string; music_type "
    "-> 1 + rank of the whole number; duration (video_duration) and stat_<column> -> quantile buckets (bucket_edges)",
    "bucket_edges": "edges at the 1/n .. (n-1)/n quantiles (n = statistic_buckets) of the values of the distinct "
    "videos shown on a train day, each once; equal edges merged; id 1 for value <= edges[0], k + 1 for "
    "edges[k-1] < value <= edges[k], len(edges) + 1 above; 0 = missing",
    "tab": "1 + rank of the raw tab among those of the run's logs",
    "hour": "Beijing hour of time_ms + 1 (1..24)",
    "histories": "group <behaviour>: the user's events with that behaviour (label column 1) strictly before the "
    "sample's time_ms (events sharing its time_ms excluded), by reference: rows [<behaviour>_start, "
    "<behaviour>_end) of events.parquet; models read the most recent max_len, most recent last, left-padded with 0",
    "row_id": "the log file's row_id_offset (manifest inputs) + the physical line",
}


def feature_map(
    dataset_name: str,
    features: FeatureTables,
    logged: LoggedEvents,
    *,
    options: Mapping,
    max_lens: Mapping[str, int],
    split_times: Mapping[str, str],
) -> FeatureMap:
    """Tasks, categorical features, one by-reference sequence group per behaviour, and how they were made."""
    sizes = features.sizes
    categorical = ["user_id", *USER_FEATURES, *features.video, "tab", "hour"]
    sizes = {**sizes, "tab": len(logged.tabs) + 1, "hour": 25}
    behaviors, fields = options["history"]["behaviors"], options["history"]["fields"]
    sequences = [
        Feature(f"{b}_{f}", "sequence", vocab_size=sizes[f], shares_vocab_with=f, group=b, event_column=f)
        for b in behaviors
        for f in fields
    ]
    return FeatureMap(
        dataset=dataset_name,
        tasks=[Task(name) for name in options["tasks"]],
        features=[Feature(name, "categorical", vocab_size=sizes[name]) for name in categorical] + sequences,
        sequence_groups=[
            SequenceGroup(
                b,
                max_lens[b],
                storage="events",
                start=f"{b}_start",
                end=f"{b}_end",
                timestamp=TIME_COLUMN,
                row_time=TIME_COLUMN,
            )
            for b in behaviors
        ],
        group_by="user_id",
        extra={
            "source": "kuairand",
            "logs": options["logs"],
            "history_behaviors": {b: BEHAVIOR_LABELS[b] for b in behaviors},
            "history_fields": list(fields),
            "split_times": dict(split_times),
            "utc_offset_hours": 8,
            **FEATURE_NOTES,
            "bucket_edges_values": features.edges,
            "tokens": features.tokens,
            "columns_not_features": [ROW_ID, "time_ms", TIME_COLUMN],
        },
    )


def _input(record: LogFile | SideFile, input_hash: str, row_id_offset: int = 0) -> InputFile:
    return input_file(
        record.path, input_hash, record.sha256, lines=record.lines, data_lines=record.data_lines,
        row_id_offset=row_id_offset,
    )  # fmt: skip


def manifest(
    dataset_name: str,
    *,
    logs: Sequence[LogFile],
    sides: Mapping[str, Sequence[SideFile]],
    logged: LoggedEvents,
    features: FeatureTables,
    samples: SampleWriter,
    bad: BadRows,
    options: Mapping,
    knobs: Mapping,
    split_times: Mapping[str, str],
    single_class: Mapping[str, list[str]],
    staged: StagedOutputs,
) -> DataManifest:
    """The run's record: inputs, options, rows, bad rows, splits, outputs, versions, and the KuaiRand facts."""

    def statistics_unmatched(key: str, count: int) -> dict:
        """Counted only where statistics are read: with ``statistics: []`` no video has any, and none is missing."""
        return {key: count} if options["statistics"] else {}

    input_hash = options["input_hash"]
    inputs = {r.path.name: _input(r, input_hash, r.row_id_offset) for r in logs}
    inputs |= {r.path.name: _input(r, input_hash) for records in sides.values() for r in records}
    rows = samples.rows
    videos = len(logged.videos)
    return DataManifest(
        dataset=dataset_name,
        format="kuairand",
        inputs=inputs,
        options={**options, **knobs},
        rows=RowCounts(read=sum(r.data_lines for r in logs), written=sum(rows.values()), bad=bad.total),
        bad_rows=dict(bad.counts),
        bad_row_examples=list(bad.examples),
        dropped={},
        splits={name: samples.writers[name].summary() for name in SPLITS},
        split_times=SplitTimes(**split_times),
        outputs=staged.describe((*SPLITS, "feature_map")),
        packages=package_versions(("numpy", "pyarrow")),
        details={
            "exposures": logged.exposures,
            "single_class_tasks": dict(single_class),  # their AUC in that split is undefined
            "history_events": samples.behavior_events,
            "users": {
                "in_logs": len(logged.users),
                "with_features": int(features.user_found[1:].sum()),
                "without_features": len(logged.users) - int(features.user_found[1:].sum()),
            },
            "videos": {
                "in_logs": videos,
                "without_basic_features": videos - int(features.basic_found[1:].sum()),
                **statistics_unmatched("without_statistics", videos - int(features.statistic_found[1:].sum())),
            },
            # exposures whose user or video got missing-feature ids (not an error)
            "exposures_without": {k: v for k, v in samples.unmatched.items() if k != "video_statistic"}
            | statistics_unmatched("video_statistic", samples.unmatched["video_statistic"]),
            "feature_rows_read": {kind: sum(r.rows for r in records) for kind, records in sides.items()},
            "vocab_sizes": features.sizes,
        },
    )


__all__ = ["FEATURE_NOTES", "feature_map", "manifest"]
