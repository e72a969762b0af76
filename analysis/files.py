"""Writing outputs safely: a folder is built aside and renamed into place only when complete.

A failed or interrupted run removes its staging folder and leaves the previous report, if any,
exactly as it was; JSON never carries NaN or infinity (a missing number is null).
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def dumps(values: Any) -> str:
    """JSON text; ValueError if any number is NaN or infinite (they must be null instead)."""
    try:
        return json.dumps(values, indent=2, allow_nan=False) + "\n"
    except ValueError:
        raise ValueError("a result is NaN or infinite; nothing was written") from None


MANIFEST = "gmm-compare-manifest.json"
"""The file naming the tool, its version and the folder's contents: how a report is known."""
TOOL = "gmm-compare"
STAGING_MARK = ".partial-"
OLD_MARK = ".old-"


def tool_version() -> str:
    """The installed gmm-compare version ("unknown" when run from a source tree)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(TOOL)
    except PackageNotFoundError:
        return "unknown"


def resolve_target(target: Path) -> Path:
    """The folder to write: a symlink is followed; ValueError for '.', '/' or a folder above cwd.

    Replacing the working folder (or one containing it, or the root) would pull the ground from
    under the user, so such a target is refused before any work.
    """
    real = Path(os.path.realpath(target))
    if real == real.parent or Path.cwd().resolve().is_relative_to(real):
        raise ValueError(
            f"output folder {str(target)!r} is the current folder, one containing it or the "
            "root: name a new folder for the report, e.g. --out reports/run1"
        )
    return real


def check_output_folder(target: Path, recognised: frozenset[str] = frozenset()) -> None:
    """Raise ValueError unless target is (or can become) a folder we may write and replace.

    An existing folder may be replaced only when it is empty or one of our reports: it holds
    our manifest and nothing the manifest does not list, or (a report written before manifests
    existed) holds only the names in `recognised`, `recognised` being non-empty.
    """
    if target.exists() and not target.is_dir():
        raise ValueError(f"output folder {str(target)!r} exists and is not a folder")
    check_parent(target)
    if target.is_dir():
        check_replaceable(target, recognised)


def check_replaceable(target: Path, recognised: frozenset[str]) -> None:
    """ValueError unless the existing folder target is empty or recognisably one of our reports."""
    try:
        names = {p.name for p in target.iterdir()}
    except OSError as error:
        raise ValueError(f"cannot read output folder {str(target)!r}: {error.strerror}") from None
    if not os.access(target, os.W_OK | os.X_OK):
        raise ValueError(f"output folder {str(target)!r} is not writable")
    if not names:
        return
    listed = manifest_files(target)
    if listed is not None:
        unexpected = sorted(names - set(listed) - {MANIFEST})
        why = f"holds files this tool did not write ({_some(unexpected)})"
    elif recognised and names <= recognised:
        return
    else:
        unexpected = sorted(names - recognised)
        why = f"is not a {TOOL} report (no {MANIFEST}; it holds {_some(unexpected)})"
    if unexpected:
        raise ValueError(
            f"output folder {str(target)!r} {why}, and it would be replaced: "
            "choose another --out, or move or empty that folder first"
        )


def _some(names: list[str]) -> str:
    """The first few names, comma-separated."""
    return ", ".join(names[:5]) + (", ..." if len(names) > 5 else "")


def manifest_files(folder: Path) -> list[str] | None:
    """The file names a folder's manifest lists, or None when it has no valid manifest."""
    try:
        document = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(document, dict) or document.get("tool") != TOOL:
        return None
    files = document.get("files")
    if not isinstance(files, list) or not all(isinstance(f, str) for f in files):
        return None
    return files


def write_manifest(folder: Path) -> None:
    """Write the manifest of folder: the tool, its version and the top-level names it holds."""
    names = sorted(p.name for p in folder.iterdir() if p.name != MANIFEST)
    document = {"tool": TOOL, "version": tool_version(), "files": names}
    (folder / MANIFEST).write_text(dumps(document), encoding="utf-8")


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


def make_staging(target: Path, recognised: frozenset[str] = frozenset()) -> Path:
    """A new empty hidden folder beside target, where the new contents are written.

    Its name carries this process's id, so that a later run can tell a killed run's leftovers
    (removed by `remove_stale`) from a running one's. It gets the usual folder permissions
    (mkdtemp's are private) in case it is left behind.
    """
    check_output_folder(target, recognised)
    remove_stale(target)
    try:
        staging = Path(
            tempfile.mkdtemp(
                prefix=f".{target.name}{STAGING_MARK}{os.getpid()}-", dir=target.parent
            )
        )
    except OSError as error:
        raise ValueError(
            f"cannot write to output folder {str(target)!r}: {error.strerror}"
        ) from None
    staging.chmod(usual_mode(True))
    return staging


def _owner_alive(path: Path, mark: str) -> bool:
    """Whether the process whose id is in a staging or old folder's name is still running.

    Names without an id (written by an older version) count as alive: they are left alone.
    """
    pid_text = path.name.rsplit(mark, 1)[-1].split("-", 1)[0]
    if not pid_text.isdigit():
        return True
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists but belongs to someone else
        return True
    return True


def remove_stale(target: Path) -> None:
    """Remove the staging and old folders beside target left by runs that were killed.

    If a run was killed between moving the old report aside and moving the new one in, the
    old report is moved back to target, not removed.
    """
    for mark in (OLD_MARK, STAGING_MARK):
        for path in target.parent.glob(f".{glob.escape(target.name)}{mark}*"):
            if not path.is_dir() or _owner_alive(path, mark):
                continue
            previous = path / "previous"
            if mark == OLD_MARK and previous.is_dir() and not target.exists():
                os.replace(previous, target)
            shutil.rmtree(path, ignore_errors=True)


def usual_mode(is_folder: bool) -> int:
    """The permissions a new folder or file gets from open() and mkdir(), after the umask."""
    from models.storage import usual_mode as mode  # models is imported only when writing

    return mode(is_folder)


def open_permissions(folder: Path) -> None:
    """Give the folder and its files the usual permissions (temporary files are private)."""
    for path in [folder, *folder.rglob("*")]:
        path.chmod(usual_mode(path.is_dir()))


def publish(staging: Path, target: Path) -> None:
    """Replace target by the complete staging folder (two renames; the old one is then removed)."""
    write_manifest(staging)
    open_permissions(staging)
    old = None
    if target.exists():
        old = Path(
            tempfile.mkdtemp(prefix=f".{target.name}{OLD_MARK}{os.getpid()}-", dir=target.parent)
        )
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
def staged_folder(
    target: Path,
    recognised: frozenset[str] = frozenset(),
    before_publish: Callable[[], None] | None = None,
) -> Iterator[Path]:
    """Yield a staging folder; on success it replaces target, on any failure it is removed.

    Target is checked first (see `check_output_folder`; `recognised` names the files of a
    report written before manifests existed); a symlink is followed, so the folder it points
    to is replaced and the link kept. `before_publish` may raise to stop the replacement (the
    command line's check that no interrupt was swallowed on the way).
    """
    target = resolve_target(target)
    staging = make_staging(target, recognised)
    try:
        yield staging
        if before_publish is not None:
            before_publish()
        publish(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def check_output_file(path: Path) -> Path:
    """The file to write for path: a new path or a regular file (a symlink is followed).

    ValueError for a folder, a device, a FIFO or a socket: renaming a file over them would
    replace them (run as root, `--out /dev/null` would break the machine).
    """
    real = Path(os.path.realpath(path))
    check_parent(real)
    if real.exists() and not real.is_file():
        kind = "a folder" if real.is_dir() else "not a regular file (a device, FIFO or socket)"
        raise ValueError(
            f"output file {str(path)!r} is {kind}: give a regular file's path, "
            "or - for standard output"
        )
    return real


def write_text_atomic(path: Path, text: str) -> None:
    """Write text to path (a new path or a regular file) through a temporary file and a rename."""
    from models.storage import write_atomically  # models is imported only when writing

    real = check_output_file(path)
    try:
        write_atomically(real, lambda temporary: temporary.write_text(text, encoding="utf-8"))
    except OSError as error:
        raise ValueError(f"cannot write {str(path)!r}: {error.strerror}") from None


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
