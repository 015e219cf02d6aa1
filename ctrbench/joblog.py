"""Logging for one workflow job: to the rule's ``log:`` file and to the terminal."""

from __future__ import annotations

import contextlib
import logging
import sys
from pathlib import Path


@contextlib.contextmanager
def job_logging(log_path: str | Path, level: int = logging.INFO):
    """Route the package's log records to the job's log file (and stderr); log any failure's traceback there."""
    Path(log_path).parent.mkdir(parents=True, exist_ok=True)
    logging.captureWarnings(True)
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    handlers = [logging.FileHandler(log_path, mode="w"), logging.StreamHandler(sys.stderr)]
    root = logging.getLogger()
    for handler in handlers:
        handler.setFormatter(fmt)
        root.addHandler(handler)
    root.setLevel(level)
    try:
        yield logging.getLogger("ctrbench.job")
    except BaseException:
        logging.getLogger("ctrbench.job").exception("job failed")
        raise
    finally:
        for handler in handlers:
            root.removeHandler(handler)
            handler.close()
