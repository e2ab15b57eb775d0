"""A training folder belongs to one run: nothing a user trained is overwritten or mixed up.

- A new run refuses a folder that already holds one, unless told to --resume it or --overwrite it.
- --resume refuses settings that would change the saved run's numbers (the list of differences
  says which), and refuses a folder with results but no last.pt to resume from.
- A lock file with the owner's PID refuses a second run into the same folder while the first
  lives; a lock left by a dead process is taken over.
"""
import os
from dataclasses import asdict
from contextlib import contextmanager
from pathlib import Path

RUN_FILES = ("last.pt", "best.pt", "metrics.csv")
LOCK_FILE = ".lock"
# What a resumed run may change: none of these alters the numbers it computes.
# precision is compared as resolved ('auto' may mean fp32 or bf16), see loop.py.
RESUMABLE_CHANGES = ("epochs", "max_steps", "device", "progress", "download", "data_root", "out", "resume",
                     "overwrite", "precision", "deadline")


def existing_run_files(out):
    return [name for name in RUN_FILES if (Path(out) / name).exists()]


def make_writable(out):
    """Create `out` if needed and check, before any work, that files can be written into it."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file, not a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / f".write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as error:
        raise ValueError(f"cannot write into --out {out}: {error.strerror or error}") from None


def claim(out, resume, overwrite):
    """Check that a run may write into `out` (see the module docstring). Returns the files an
    --overwrite replaces ([] otherwise)."""
    found = existing_run_files(out)
    if resume and overwrite:
        raise ValueError("--resume and --overwrite exclude each other: continue the run, or start it again")
    if found and not (resume or overwrite):
        raise ValueError(f"{out} already holds a training run ({', '.join(found)}); use --resume to continue "
                         f"it, --overwrite to start again and replace it, or another --out")
    if resume and found and "last.pt" not in found:
        raise ValueError(f"cannot resume: {out} holds {', '.join(found)} but no last.pt to continue from; "
                         "use --overwrite to start again and replace it")
    return found if overwrite else []


def setting_differences(saved, config, changeable=RESUMABLE_CHANGES):
    """['lr was 0.001, now 0.003', ...]: the settings outside `changeable` in which the saved run's
    train_config (a dict; a setting newer than the file, or None, is saved as absent) and `config` differ."""
    defaults = type(config)()
    return [f"{name} was {saved.get(name, getattr(defaults, name))!r}, now {getattr(config, name)!r}"
            for name in asdict(config) if name not in changeable
            and saved.get(name, getattr(defaults, name)) != getattr(config, name)]


def check_resumable(saved, config):
    """Refuse a resume whose settings differ from the saved run's where that changes the numbers."""
    annealing = saved.get("schedule", "exponential") != "exponential"  # its length is part of the run
    differences = setting_differences(saved, config, [n for n in RESUMABLE_CHANGES if not (annealing and n == "epochs")])
    if differences:
        raise ValueError("cannot resume with other settings than the saved run's: " + "; ".join(differences)
                         + ". Resume with the same settings (only --epochs (not with an annealing --schedule), --max-steps, "
                         "--device, --precision and --no-progress may change), or use --overwrite to start again")


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:         # exists, owned by someone else
        return True
    return True


@contextmanager
def locked(out):
    """Hold OUT/.lock for the duration of a run; refuse if a live process holds it."""
    lock = Path(out) / LOCK_FILE
    for _ in range(2):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            break
        except FileExistsError:
            try:
                owner = int(lock.read_text().strip() or 0)
            except (OSError, ValueError):
                owner = 0
            if owner and owner != os.getpid() and _alive(owner):
                raise ValueError(f"another run (process {owner}) is training into {out}; "
                                 f"wait for it or choose another --out") from None
            lock.unlink(missing_ok=True)       # stale: its process is gone
    else:
        raise ValueError(f"could not take the lock {lock}")
    with os.fdopen(fd, "w") as f:
        f.write(str(os.getpid()))
    try:
        yield
    finally:
        lock.unlink(missing_ok=True)
