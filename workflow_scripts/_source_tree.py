"""Imported first by every workflow script: puts the checkout that the script belongs to first on sys.path.

So a job imports this checkout's ctrbench package whatever runs it: the Python of a plain run (where `pip install -e .`
points at the same files), a conda env (`--sdm conda`, which installs no ctrbench and from which Snakemake strips
PYTHONPATH) or an Apptainer image (`--sdm apptainer`, which holds only the dependencies; Snakemake's
`apptainer exec --home <working directory>` makes the checkout visible when it lies under the working directory,
else bind it with --apptainer-args "--bind <checkout>"). Snakemake puts this directory on a script's sys.path.
"""

import os
import sys

CHECKOUT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if os.path.isdir(os.path.join(CHECKOUT, "ctrbench")) and CHECKOUT not in sys.path:
    sys.path.insert(0, CHECKOUT)
