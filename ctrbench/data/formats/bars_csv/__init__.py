"""Format ``bars_csv``: the FuxiCTR / BARS split directories (``train.csv``, optional ``valid.csv``, ``test.csv``
with a header), one label column and feature columns declared categorical (strings) or numeric: one reader for
Avazu_x1 / x2 / x4, Criteo_x1 / x4 and similar public splits.

- ``reader``: the streaming reader of one file (``BarsReader``), columns by header name;
- ``preprocess``: the directory -> train / valid / gold parquet, vocabularies of the train split with ``min_count``;
- ``options.yaml``: the dataset-config keys it takes, with their defaults.

It has no generator: the embedded default of this layout family is format ``avazu``'s.
"""

from ctrbench.data.formats.bars_csv.options import OPTIONS
from ctrbench.data.formats.bars_csv.preprocess import SPLIT_FILES, preprocess_bars_csv
from ctrbench.data.formats.base import DatasetFormat, DirectoryFile

FORMAT = DatasetFormat(
    name="bars_csv",
    options=OPTIONS,
    preprocess=preprocess_bars_csv,
    write_synthetic=None,
    directory_files=(
        DirectoryFile(SPLIT_FILES["train"]),
        DirectoryFile(SPLIT_FILES["valid"], required=False),
        DirectoryFile(SPLIT_FILES["gold"]),
    ),
)
