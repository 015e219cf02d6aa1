"""Format ``avazu``: the raw Avazu CTR layout (one CSV, ``id, click, hour, C1, banner_pos, ..., C21``; FuxiCTR's
Avazu_x4 before its 8:1:1 split), 24 categorical fields (the 21 columns and hour of day, weekday, weekend).

- ``reader``: the streaming reader (``AvazuReader``), columns by header name, the derived hour fields;
- ``preprocess``: the CSV -> train / valid / gold parquet, vocabularies of the train split with ``min_count``;
- ``synthetic``: a seeded file in the same layout with a planted signal (site_category x device_type, hour of day);
- ``options.yaml``: the dataset-config keys it takes, with their defaults.
"""

from ctrbench.data.formats.avazu.options import OPTIONS
from ctrbench.data.formats.avazu.preprocess import option_problems, preprocess_avazu
from ctrbench.data.formats.avazu.synthetic import write_synthetic_avazu
from ctrbench.data.formats.base import DatasetFormat

FORMAT = DatasetFormat(
    name="avazu",
    options=OPTIONS,
    preprocess=preprocess_avazu,
    write_synthetic=write_synthetic_avazu,
    option_problems=option_problems,
)
