"""Logging for one workflow job: to the rule's ``log:`` file and to the terminal."""

from __future__ import annotations

import contextlib
import logging
import sys
from pathlib import Path

JOB_LOGGER = "ctrbench.job"


def _not_file_only(record: logging.LogRecord) -> bool:
    return not getattr(record, "file_only", False)


@contextlib.contextmanager
def job_logging(log_path: str | Path, level: int = logging.INFO):
    """Route the package's log records to the job's log file (and stderr).

    A failure is reported once: its traceback goes to the log file only, the terminal gets one line (the error's
    type and message) and the job exits with status 1. Re-raised, Python would print the traceback a second time
    under the logged one, and Snakemake prints the job's stderr as it is."""
    Path(log_path).parent.mkdir(parents=True, exist_ok=True)
    logging.captureWarnings(True)
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    stream = logging.StreamHandler(sys.stderr)
    stream.addFilter(_not_file_only)
    # emptied once, then appended to (O_APPEND): the processes of a distributed training job write the same
    # file, and a handler that kept its own offset would write over their lines
    Path(log_path).write_text("")
    handlers = [logging.FileHandler(log_path, mode="a"), stream]
    root = logging.getLogger()
    for handler in handlers:
        handler.setFormatter(fmt)
        root.addHandler(handler)
    root.setLevel(level)
    log = logging.getLogger(JOB_LOGGER)
    try:
        yield log
    except Exception as error:
        log.exception("job failed", extra={"file_only": True})
        stream.flush()
        print(f"{type(error).__name__}: {error} (traceback in {log_path})", file=sys.stderr, flush=True)
        raise SystemExit(1) from None
    except BaseException:  # KeyboardInterrupt, SystemExit: logged, and left to end the job as they would
        log.exception("job stopped", extra={"file_only": True})
        raise
    finally:
        for handler in handlers:
            root.removeHandler(handler)
            handler.close()
