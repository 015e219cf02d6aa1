"""Format ``kuairand``: the KuaiRand release's ``data/`` directory (Pure, 1K or 27K), turned into multi-task samples
(one per exposure) with behaviour-specific histories stored by reference.

- ``layout``: the files and columns of the release, the bad-row kinds;
- ``logs``: the streaming log reader; ``sides``: the feature-file readers (users, video basics, statistics);
- ``preprocess``: the run, in two passes over the logs: ``events`` (pass 1: bucket by user, count) and ``samples``
  (pass 2: rows and the event table), with ``features`` and ``vocab`` (ids, quantile buckets) and ``records``
  (feature map, manifest);
- ``synthetic`` (with ``synthetic_features``, ``synthetic_requests``): a seeded directory in the KuaiRand-Pure
  layout with planted multi-task signals, read by the same readers (the embedded default); ``synthetic_long``: the
  profile ``long_history``, few users with long logs and a click that depends on clicks far back;
- ``options.yaml``: the dataset-config keys it takes, with their defaults.
"""

import functools

from ctrbench.data.formats.base import DatasetFormat
from ctrbench.data.formats.kuairand.layout import FILES
from ctrbench.data.formats.kuairand.options import OPTIONS, option_problems
from ctrbench.data.formats.kuairand.preprocess import preprocess_kuairand
from ctrbench.data.formats.kuairand.synthetic_long import LONG_HISTORY
from ctrbench.data.formats.kuairand.synthetic_writer import write_synthetic_kuairand

FORMAT = DatasetFormat(
    name="kuairand",
    options=OPTIONS,
    preprocess=preprocess_kuairand,
    write_synthetic=write_synthetic_kuairand,  # writes the directory (rule generate_synthetic)
    synthetic_profiles={"long_history": functools.partial(write_synthetic_kuairand, profile=LONG_HISTORY)},
    has_sequences=True,
    history_groups=lambda options: tuple(options["history"]["behaviors"]),  # one group per behaviour, named after it
    directory_files=tuple(FILES.values()),
    option_problems=option_problems,
)
