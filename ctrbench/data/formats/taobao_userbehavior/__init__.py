"""Format ``taobao_userbehavior``: Tianchi's ``UserBehavior.csv`` (one event per line), turned into CTR samples
with sampled negatives and histories stored by reference.

- ``reader``: the raw layout and the streaming reader (``UserBehaviorReader``);
- ``preprocess``: events -> samples split by local time, with the event table ``events.parquet``, in two passes:
  ``buckets`` (pass 1: filter, bucket by user, count) and ``samples`` (pass 2: rows and the event table), with
  ``vocab`` (ids, the user subsample, negatives) and ``timesplit`` (local days, split boundaries);
- ``synthetic``: a seeded file in the same layout with a planted signal (the embedded default);
- ``options.yaml``: the dataset-config keys it takes, with their defaults.
"""

from ctrbench.data.formats.base import DatasetFormat
from ctrbench.data.formats.taobao_userbehavior.options import OPTIONS
from ctrbench.data.formats.taobao_userbehavior.preprocess import preprocess_userbehavior
from ctrbench.data.formats.taobao_userbehavior.synthetic import write_synthetic_userbehavior
from ctrbench.data.schema import DEFAULT_SEQUENCE_GROUP

FORMAT = DatasetFormat(
    name="taobao_userbehavior",
    options=OPTIONS,
    preprocess=preprocess_userbehavior,
    write_synthetic=write_synthetic_userbehavior,
    has_sequences=True,
    history_groups=lambda options: (DEFAULT_SEQUENCE_GROUP,),
)
