"""Format ``aliexpress``: the processed AliExpress multi-task CSVs of FuxiCTR/BARS and the
Multitask-Recommendation-Library (a directory with train.csv and test.csv), two tasks: click and conversion.

- ``reader``: the streaming reader (``AliExpressReader``), columns by header name;
- ``preprocess``: the CSVs -> train / valid / gold parquet;
- ``synthetic``: a seeded directory in the same layout with a planted two-task signal;
- ``options.yaml``: the dataset-config keys it takes, with their defaults.
"""

from ctrbench.data.formats.aliexpress.options import OPTIONS
from ctrbench.data.formats.aliexpress.preprocess import SPLIT_FILES, preprocess_aliexpress
from ctrbench.data.formats.aliexpress.synthetic import write_synthetic_aliexpress
from ctrbench.data.formats.base import DatasetFormat, DirectoryFile

FORMAT = DatasetFormat(
    name="aliexpress",
    options=OPTIONS,
    preprocess=preprocess_aliexpress,
    write_synthetic=write_synthetic_aliexpress,  # writes the directory (rule generate_synthetic: results/<dataset>/raw/)
    directory_files=(DirectoryFile(SPLIT_FILES["train"]), DirectoryFile(SPLIT_FILES["gold"])),
)
