"""Format ``taobao_ad``: the BARS / FuxiCTR TaobaoAd_x1 CSVs (a directory with train.csv, test.csv and optionally
valid.csv), each row carrying the user's click sequence, kept at a fixed length.

- ``reader``: the streaming reader (``TaobaoAdReader``);
- ``preprocess``: the CSVs -> train / valid / gold parquet;
- ``synthetic``: a seeded directory in the same layout with a planted signal;
- ``options.yaml``: the dataset-config keys it takes, with their defaults.
"""

from ctrbench.data.formats.base import DatasetFormat, DirectoryFile
from ctrbench.data.formats.taobao_ad.options import OPTIONS
from ctrbench.data.formats.taobao_ad.preprocess import SPLIT_FILES, preprocess_taobao_ad
from ctrbench.data.formats.taobao_ad.synthetic import write_synthetic_taobao_ad

FORMAT = DatasetFormat(
    name="taobao_ad",
    options=OPTIONS,
    preprocess=preprocess_taobao_ad,
    write_synthetic=write_synthetic_taobao_ad,
    has_sequences=True,
    directory_files=(
        DirectoryFile(SPLIT_FILES["train"]),
        DirectoryFile(SPLIT_FILES["gold"]),
        DirectoryFile(SPLIT_FILES["valid"], required=False),
    ),
)
