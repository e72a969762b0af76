"""Writing outputs safely: a folder is built aside and renamed into place only when complete.

A failed or interrupted run removes its staging folder and leaves the previous report, if any,
exactly as it was; JSON never carries NaN or infinity (a missing number is null).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def dumps(values: Any) -> str:
    """JSON text; ValueError if any number is NaN or infinite (they must be null instead)."""
    try:
        return json.dumps(values, indent=2, allow_nan=False) + "\n"
    except ValueError:
        raise ValueError("a result is NaN or infinite; nothing was written") from None


def check_output_folder(target: Path) -> None:
    """Raise ValueError unless target is (or can become) a folder we may write next to."""
    if target.exists() and not target.is_dir():
        raise ValueError(f"output folder {str(target)!r} exists and is not a folder")
    check_parent(target)


def check_parent(target: Path) -> None:
    """Create target's parent folder if needed; ValueError if we cannot write in it."""
    parent = target.parent
    existing = next((p for p in (parent, *parent.parents) if p.exists()), None)
    if existing is not None and not existing.is_dir():
        raise ValueError(f"cannot write {str(target)!r}: {str(existing)!r} is a file, not a folder")
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ValueError(
            f"cannot create {str(parent)!r} for {str(target)!r}: {error.strerror}"
        ) from None
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ValueError(f"cannot write {str(target)!r}: folder {str(parent)!r} is not writable")


def make_staging(target: Path) -> Path:
    """A new empty hidden folder beside target, where the new contents are written."""
    check_output_folder(target)
    try:
        return Path(tempfile.mkdtemp(prefix=f".{target.name}.partial-", dir=target.parent))
    except OSError as error:
        raise ValueError(
            f"cannot write to output folder {str(target)!r}: {error.strerror}"
        ) from None


def _umask() -> int:
    """The process's file-creation mask (read by setting and restoring it)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def usual_mode(is_folder: bool) -> int:
    """The permissions a new folder or file gets from open() and mkdir(), after the umask."""
    return (0o777 if is_folder else 0o666) & ~_umask()


def open_permissions(folder: Path) -> None:
    """Give the folder and its files the usual permissions (temporary files are private)."""
    for path in [folder, *folder.rglob("*")]:
        path.chmod(usual_mode(path.is_dir()))


def publish(staging: Path, target: Path) -> None:
    """Replace target by the complete staging folder (two renames; the old one is then removed)."""
    open_permissions(staging)
    old = None
    if target.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
        os.replace(target, old / "previous")
    try:
        os.replace(staging, target)
    except OSError:
        if old is not None:
            os.replace(old / "previous", target)
            shutil.rmtree(old, ignore_errors=True)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


@contextmanager
def staged_folder(target: Path) -> Iterator[Path]:
    """Yield a staging folder; on success it replaces target, on any failure it is removed."""
    staging = make_staging(target)
    try:
        yield staging
        publish(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def write_text_atomic(path: Path, text: str) -> None:
    """Write text to path through a temporary file in the same folder and a rename."""
    check_parent(path)
    if path.is_dir():
        raise ValueError(f"output file {str(path)!r} is a folder")
    try:
        handle, name = tempfile.mkstemp(prefix=f".{path.name}.partial-", dir=path.parent)
    except OSError as error:
        raise ValueError(f"cannot write {str(path)!r}: {error.strerror}") from None
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text)
        os.chmod(name, usual_mode(False))  # mkstemp makes the file private
        os.replace(name, path)
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise


def leftovers(folder: Path) -> list[Path]:
    """Staging folders left beside reports in folder by runs that were killed (SIGKILL)."""
    return sorted(p for p in folder.glob(".*.partial-*") if p.is_dir()) + sorted(
        p for p in folder.glob(".*.old-*") if p.is_dir()
    )


def main(argv: list[str] | None = None) -> int:
    """`python -m analysis.files [FOLDER] [--remove]`: list (or remove) killed runs' leftovers."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m analysis.files", description=main.__doc__)
    parser.add_argument("folder", type=Path, nargs="?", default=Path("reports"))
    parser.add_argument("--remove", action="store_true", help="delete them")
    args = parser.parse_args(argv)
    for path in leftovers(args.folder):
        print(path)
        if args.remove:
            shutil.rmtree(path)
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main())
