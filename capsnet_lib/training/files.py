"""The one way capsnet_lib writes a file: whole or not at all.

The content goes to a hidden temporary file in the same folder, is flushed to the disk, and the
temporary file is renamed over the target: a run killed mid-write leaves the previous version
intact (and a `.NAME.*.tmp` that the next run in that folder removes).
"""
import csv
import errno
import io
import os
import tempfile
from pathlib import Path


def atomic_write(path, write, binary=True):
    """Call write(f) on a temporary file beside `path`, then rename it over `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb" if binary else "w", **({} if binary else {"newline": ""})) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as error:
        os.unlink(tmp)
        if _disk_full(error):
            kept = f"the previous {path.name} is intact" if path.exists() else "nothing was written"
            raise OSError(errno.ENOSPC, f"the disk is full: could not save {path}; {kept}. "
                                        "Free some space and --resume") from None
        raise


def atomic_write_text(path, text):
    atomic_write(path, lambda f: f.write(text), binary=False)


def atomic_write_csv(path, fieldnames, rows):
    """The dicts `rows` as a CSV with a header of `fieldnames` (other keys left out), whole or not at all."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=fieldnames, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(path, buffer.getvalue())


def remove_stale_temp_files(folder):
    """Remove the temporary files that writes killed mid-way left in `folder`."""
    for tmp in Path(folder).glob(".*.tmp"):
        tmp.unlink(missing_ok=True)


def _disk_full(error):
    # torch.save reports a full disk as a RuntimeError from its zip writer ("unexpected pos").
    return getattr(error, "errno", None) == errno.ENOSPC or "No space left" in str(error) or (
        isinstance(error, RuntimeError) and "unexpected pos" in str(error))
