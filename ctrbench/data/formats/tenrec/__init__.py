"""Format ``tenrec``: Tenrec's QB-Video / QK-Video CSV (one row per exposure, each user's rows in order, no
timestamp), four tasks (click, like, follow, share) and per-behaviour histories stored by reference.

- ``reader``: the raw layout and the streaming reader (``TenrecReader``), columns by header name, ``\\N`` missing;
- ``preprocess``: pass 1 (validate, bucket by user, vocabularies) and the outputs; ``samples``: pass 2 (splits
  by position within each user, histories, rows);
- ``synthetic``: a seeded file in the same layout with signals planted in the histories;
- ``options.yaml``: the dataset-config keys it takes, with their defaults.
"""

from ctrbench.data.formats.base import DatasetFormat
from ctrbench.data.formats.tenrec.options import OPTIONS
from ctrbench.data.formats.tenrec.preprocess import history_groups, option_problems, preprocess_tenrec
from ctrbench.data.formats.tenrec.synthetic import write_synthetic_tenrec

FORMAT = DatasetFormat(
    name="tenrec",
    options=OPTIONS,
    preprocess=preprocess_tenrec,
    write_synthetic=write_synthetic_tenrec,
    has_sequences=True,
    history_groups=history_groups,
    option_problems=option_problems,
)
