"""Writing outputs safely: a folder is built aside and swapped into place in one step, complete.

Only a folder that is empty or wholly ours (its manifest names the kind of command that wrote
it and lists everything it holds) is replaced, and only by the same kind of command. A failed
or interrupted run removes its staging folder and leaves the previous report, if any, exactly
as it was; JSON never carries NaN or infinity (a missing number is null).
"""

from __future__ import annotations

import ctypes
import errno
import glob
import json
import os
import shutil
import stat
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import cache
from itertools import islice
from pathlib import Path
from typing import Any, NamedTuple, NoReturn

from analysis.interrupts import interrupts_held


def dumps(values: Any) -> str:
    """JSON text; ValueError if any number is NaN or infinite (they must be null instead)."""
    try:
        return json.dumps(values, indent=2, allow_nan=False) + "\n"
    except ValueError:
        raise ValueError("a result is NaN or infinite; nothing was written") from None


MANIFEST = "gmm-compare-manifest.json"
"""The file naming the tool, its version, the folder's kind and contents: how ours are known."""
MANIFEST_LIMIT = 1 << 20
"""Bytes of a manifest read at most: ours are a few hundred; a larger file is not one of ours."""
TOOL = "gmm-compare"
STAGING_MARK = ".partial-"
OLD_MARK = ".old-"
SHOWN = 5
"""How many unexpected names a refusal shows."""
PUBLISHED: list[Path] = []
"""The folders this process has put in place (`publish`): what an interrupt no longer undoes."""

REPORT = "report"
SELECTION = "select"
STUDY = "simulate"
KINDS = {
    REPORT: "a gmm-compare report",
    SELECTION: "a gmm-compare selection report",
    STUDY: "a gmm-compare simulation study",
}
"""The kinds of folder the tool writes (compare, sample and report write the same kind): a
folder is replaced only by a command of the kind named in its manifest."""


class LegacyLayout(NamedTuple):
    """What a manifest without a kind (as written up to commit 963226b) could list, per kind."""

    signature: str
    """A name that kind's folders always held, and no other kind's."""
    names: frozenset[str]
    """Every top-level name it could list."""
    folders: dict[str, frozenset[str]]
    """The files each of its subfolders could hold (the manifest did not list them)."""


LEGACY_FIGURES = (
    "data",
    "em_clusters",
    "posterior_clusters",
    "misclassified",
    "em_convergence",
    "elbo",
    "forest",
    "vb_sd_ratio",
    "trace",
    "rank",
    "ppc",
    "pairs",
)
"""The figures a report's figures/ could hold at commit 963226b."""
LEGACY_LAYOUTS = {
    REPORT: LegacyLayout(
        "em.json",
        frozenset(
            [
                "em.json",
                "data.csv",
                "posterior.nc",
                "vb.json",
                "posterior_gauss_wishart.nc",
                "comparison.json",
                "summary.md",
                "index.html",
                "figures",
            ]
        ),
        {"figures": frozenset(f"{name}.png" for name in LEGACY_FIGURES)},
    ),
    SELECTION: LegacyLayout(
        "selection.json",
        frozenset({"selection.json", "criteria.png", "summary.md", "index.html"}),
        {},
    ),
    STUDY: LegacyLayout(
        "study.json",
        frozenset({"study.json", "replicates", "index.html", "coverage.png", "summary.json"}),
        {},
    ),
}
"""The layouts written before manifests named their kind, per kind: a record of that version,
deliberately not built from today's file names, which may change."""


class Manifest(NamedTuple):
    """A folder's manifest: its kind (None if no kind we know) and every path it lists."""

    kind: str | None
    files: frozenset[str]
    """Relative paths ('figures/rank.png') of the files, the manifest itself left out."""
    folders: frozenset[str]
    """Relative paths of the subfolders."""


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


def check_output_folder(target: Path, kind: str = REPORT) -> None:
    """Raise ValueError unless target is (or can become) a folder we may write and replace.

    An existing folder may be replaced only when it is empty, or when its manifest names this
    kind and lists everything the folder holds, at any depth (see `check_replaceable`).
    """
    if target.exists() and not target.is_dir():
        raise ValueError(f"output folder {str(target)!r} exists and is not a folder")
    check_parent(target)
    if target.is_dir():
        check_replaceable(target, kind)


def check_replaceable(target: Path, kind: str) -> None:
    """ValueError unless the existing folder target is empty or wholly ours, of this kind."""
    try:
        names = sorted(islice(names_in(target), SHOWN + 1))
    except OSError as error:
        raise ValueError(f"cannot read output folder {str(target)!r}: {error.strerror}") from None
    if not os.access(target, os.W_OK | os.X_OK):
        raise ValueError(f"output folder {str(target)!r} is not writable")
    if not names:
        return
    manifest = read_manifest(target)
    if manifest is None:
        _refuse(target, f"is not {KINDS[kind]} (no {MANIFEST}; it holds {_some(names)})")
    check_kind(target, manifest, kind)
    unexpected = sorted(islice(unlisted(target, manifest), SHOWN + 1))
    if unexpected:
        _refuse(target, f"holds files this tool did not write ({_some(unexpected)})")


def names_in(folder: Path) -> Iterator[str]:
    """The names in folder, read lazily (a folder may hold millions)."""
    with os.scandir(folder) as entries:
        for entry in entries:
            yield entry.name


def check_kind(target: Path, manifest: Manifest, kind: str) -> None:
    """ValueError naming both kinds unless the manifest's kind is `kind`."""
    if manifest.kind == kind:
        return
    found = KINDS.get(manifest.kind or "", f"an output this version of {TOOL} does not know")
    raise ValueError(
        f"output folder {str(target)!r} holds {found}, not {KINDS[kind]} as this command "
        "writes: choose another --out, or move or empty that folder first"
    )


def _refuse(target: Path, why: str) -> NoReturn:
    """The ValueError for a folder that must not be replaced."""
    raise ValueError(
        f"output folder {str(target)!r} {why}, and it would be replaced: "
        "choose another --out, or move or empty that folder first"
    )


def _some(names: list[str]) -> str:
    """The first few names, comma-separated."""
    return ", ".join(names[:SHOWN]) + (", ..." if len(names) > SHOWN else "")


def read_manifest(folder: Path) -> Manifest | None:
    """The folder's manifest, or None when it has none we can read.

    A manifest without a kind (commit 963226b and before) listed top-level names only: its
    kind is the one whose `LEGACY_LAYOUTS` entry it fits, and its subfolders may hold what
    that layout's did.
    """
    try:
        with (folder / MANIFEST).open("rb") as handle:
            text = handle.read(MANIFEST_LIMIT + 1)
        document = json.loads(text) if len(text) <= MANIFEST_LIMIT else None
    except (OSError, ValueError):
        return None
    if not isinstance(document, dict) or document.get("tool") != TOOL:
        return None
    files = _strings(document.get("files"))
    if files is None:
        return None
    if "kind" not in document:
        return _legacy(files)
    folders = _strings(document.get("folders"))
    if folders is None:
        return None
    kind = document["kind"] if document["kind"] in KINDS else None
    return Manifest(kind, files, folders)


def _strings(values: Any) -> frozenset[str] | None:
    """A JSON list of strings as a set, or None for anything else."""
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        return None
    return frozenset(values)


def _legacy(names: frozenset[str]) -> Manifest:
    """A kindless manifest's top-level names as the full listing of the layout they fit."""
    for kind, layout in LEGACY_LAYOUTS.items():
        if layout.signature in names and names <= layout.names:
            folders = frozenset(names & layout.folders.keys())
            inside = {f"{folder}/{name}" for folder in folders for name in layout.folders[folder]}
            return Manifest(kind, frozenset(names - folders) | inside, folders)
    return Manifest(None, names, frozenset())


def unlisted(folder: Path, manifest: Manifest) -> Iterator[str]:
    """The paths under folder (at any depth) that the manifest does not list, lazily.

    A listed file must be a regular file and a listed folder a folder (links are not
    followed); a folder that is not listed is named with a trailing '/' and not entered.
    """
    pending = [""]
    while pending:
        prefix = pending.pop()
        with os.scandir(folder / prefix) as entries:
            for entry in entries:
                path = prefix + entry.name
                if entry.is_dir(follow_symlinks=False):
                    if path in manifest.folders:
                        pending.append(path + "/")
                    else:
                        yield path + "/"
                elif path != MANIFEST and not (
                    path in manifest.files and entry.is_file(follow_symlinks=False)
                ):
                    yield path


def listing(folder: Path) -> tuple[list[str], list[str]]:
    """Every file and every subfolder under folder, as sorted relative paths (no manifest)."""
    files, folders = [], []
    for root, subfolders, names in os.walk(folder):
        prefix = Path(root).relative_to(folder)
        folders += [(prefix / name).as_posix() for name in subfolders]
        files += [(prefix / name).as_posix() for name in names]
    return sorted(set(files) - {MANIFEST}), sorted(folders)


def manifest_text(kind: str, files: list[str], folders: list[str]) -> str:
    """The manifest's JSON text: tool, version, kind, and the files and folders it lists."""
    document = {
        "tool": TOOL,
        "version": tool_version(),
        "kind": kind,
        "files": files,
        "folders": folders,
    }
    return dumps(document)


def write_manifest(folder: Path, kind: str = REPORT) -> None:
    """Write the manifest of folder: its kind and every file and subfolder, at any depth."""
    (folder / MANIFEST).write_text(manifest_text(kind, *listing(folder)), encoding="utf-8")


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


def make_staging(target: Path, kind: str = REPORT) -> Path:
    """A new empty hidden folder beside target, where the new contents are written.

    Its name carries this process's id, so that a later run can tell a killed run's leftovers
    (removed by `remove_stale`) from a running one's. It gets the usual folder permissions
    (mkdtemp's are private) in case it is left behind.
    """
    check_output_folder(target, kind)
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
    """Clear the staging and old folders beside target left by runs that were killed."""
    for mark in (OLD_MARK, STAGING_MARK):
        for path in target.parent.glob(f".{glob.escape(target.name)}{mark}*"):
            if path.is_dir() and not _owner_alive(path, mark):
                clear_leftover(path, mark, target)


def clear_leftover(path: Path, mark: str, target: Path) -> bool:
    """Remove a killed run's leftover folder; True if it held the only copy, now put back.

    A run killed between the two renames of `publish`'s fallback left the old report in
    `.NAME.old-PID-*/previous` and no target: that copy is moved back, never removed.
    """
    previous = path / "previous"
    restore = mark == OLD_MARK and previous.is_dir() and not os.path.lexists(target)
    if restore:
        os.rename(previous, target)
    shutil.rmtree(path, ignore_errors=True)
    return restore


def usual_mode(is_folder: bool) -> int:
    """The permissions a new folder or file gets from open() and mkdir(), after the umask."""
    from models.storage import usual_mode as mode  # models is imported only when writing

    return mode(is_folder)


def open_permissions(folder: Path) -> None:
    """Give the folder and its files the usual permissions (temporary files are private)."""
    for path in [folder, *folder.rglob("*")]:
        path.chmod(usual_mode(path.is_dir()))


AT_FDCWD = -100
RENAME_EXCHANGE = 2
"""renameat2's flag (linux/fs.h): swap two existing paths in one step."""


@cache
def _renameat2() -> Callable[..., int] | None:
    """The C library's renameat2 (Linux, glibc 2.28 or later), or None where there is none."""
    try:
        function = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return None
    function.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p]
    function.argtypes += [ctypes.c_uint]
    function.restype = ctypes.c_int
    return function


def exchange(first: Path, second: Path) -> bool:
    """Swap two existing paths in one atomic step; False where the system cannot (nothing moved).

    EINVAL (a filesystem without the flag) and ENOSYS (an older kernel) mean "cannot"; any
    other failure is an OSError.
    """
    renameat2 = _renameat2()
    if renameat2 is None:
        return False
    if renameat2(AT_FDCWD, os.fsencode(first), AT_FDCWD, os.fsencode(second), RENAME_EXCHANGE):
        number = ctypes.get_errno()
        if number in (errno.EINVAL, errno.ENOSYS):
            return False
        raise OSError(number, os.strerror(number), str(first), None, str(second))
    return True


def _swap_in(staging: Path, target: Path) -> Path | None:
    """Put staging in target's place; the folder now holding the old target (None if new).

    One step where `exchange` works (the old target is then at staging's path); otherwise two
    renames, the old target moved to `.NAME.old-PID-*/previous` first, so that a run killed
    between them leaves it where `remove_stale` puts it back.
    """
    if not os.path.lexists(target):
        os.rename(staging, target)
        return None
    if exchange(staging, target):
        return staging
    aside = Path(
        tempfile.mkdtemp(prefix=f".{target.name}{OLD_MARK}{os.getpid()}-", dir=target.parent)
    )
    os.rename(target, aside / "previous")
    try:
        os.rename(staging, target)
    except OSError:
        os.rename(aside / "previous", target)
        shutil.rmtree(aside, ignore_errors=True)
        raise
    return aside


def publish(staging: Path, target: Path, kind: str = REPORT) -> None:
    """Replace target by the complete staging folder in one step; the old one is then removed.

    Target is checked again (a run may last hours, and a file added meanwhile is not ours).
    Interrupts wait during the swap (`interrupts_held`), and target is added to PUBLISHED, so
    that the command line, interrupted later, says the new output is in place.
    """
    if target.is_dir():
        check_replaceable(target, kind)
    write_manifest(staging, kind)
    open_permissions(staging)
    old = None
    try:
        with interrupts_held():
            old = _swap_in(staging, target)
            PUBLISHED.append(target)
    finally:  # an interrupt held during the swap is raised as it ends: the old one goes too
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)


@contextmanager
def staged_folder(
    target: Path,
    kind: str = REPORT,
    before_publish: Callable[[], None] | None = None,
) -> Iterator[Path]:
    """Yield a staging folder; on success it replaces target, on any failure it is removed.

    Target is checked first (see `check_output_folder`: only an empty folder or one of ours of
    this kind is replaced); a symlink is followed, so the folder it points to is replaced and
    the link kept. `before_publish` may raise to stop the replacement (the command line's check
    that no interrupt was swallowed on the way).
    """
    target = resolve_target(target)
    staging = make_staging(target, kind)
    try:
        yield staging
        if before_publish is not None:
            before_publish()
        publish(staging, target, kind)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def check_output_file(path: Path, ours: Callable[[Path], bool] | None = None) -> Path:
    """The file to write for path: a new path, or an existing regular file `ours` accepts.

    A symlink is followed only to such an existing file. ValueError for a dangling link, a
    file `ours` rejects, a folder, a device, a FIFO or a socket: renaming a file over them
    would replace them (run as root, `--out /dev/null` would break the machine).
    """
    real = Path(os.path.realpath(path))
    if os.path.islink(path) and not real.exists():
        raise ValueError(
            f"output file {str(path)!r} is a link to {str(real)!r}, which does not exist: "
            "a link is followed only to a file this command wrote"
        )
    check_parent(real)
    if real.exists() and not real.is_file():
        kind = "a folder" if real.is_dir() else "not a regular file (a device, FIFO or socket)"
        raise ValueError(
            f"output file {str(path)!r} is {kind}: give a regular file's path, "
            "or - for standard output"
        )
    if real.exists() and ours is not None and not ours(real):
        linked = f" (a link to {str(real)!r})" if os.path.islink(path) else ""
        raise ValueError(
            f"output file {str(path)!r}{linked} exists and is not a file this command writes, "
            "so it is not replaced: give a new path, or move that file first"
        )
    return real


def write_text_atomic(path: Path, text: str, ours: Callable[[Path], bool] | None = None) -> None:
    """Write text to path through a temporary file and a rename (see `check_output_file`).

    A file replaced keeps its permissions; a new one gets the usual ones.
    """
    from models.storage import write_atomically  # models is imported only when writing

    real = check_output_file(path, ours)
    mode = stat.S_IMODE(real.stat().st_mode) if real.exists() else None
    try:
        write_atomically(
            real, lambda temporary: temporary.write_text(text, encoding="utf-8"), mode=mode
        )
    except OSError as error:
        raise ValueError(f"cannot write {str(path)!r}: {error.strerror}") from None


def leftovers(folder: Path) -> list[tuple[Path, str]]:
    """Staging and old folders left beside outputs in folder by killed runs, with their mark."""
    return [
        (path, mark)
        for mark in (STAGING_MARK, OLD_MARK)
        for path in sorted(folder.glob(f".*{mark}*"))
        if path.is_dir()
    ]


def main(argv: list[str] | None = None) -> int:
    """`python -m analysis.files [FOLDER] [--remove]`: list (or clear) killed runs' leftovers.

    Clearing never deletes the only copy of a report (see `clear_leftover`) nor a running
    command's folders.
    """
    import argparse

    parser = argparse.ArgumentParser(prog="python -m analysis.files", description=main.__doc__)
    parser.add_argument("folder", type=Path, nargs="?", default=Path("reports"))
    parser.add_argument("--remove", action="store_true", help="clear them")
    args = parser.parse_args(argv)
    for path, mark in leftovers(args.folder):
        if not args.remove:
            print(path)
        elif _owner_alive(path, mark):
            print(f"{path}: left alone, its command is still running")
        else:
            target = path.with_name(path.name[1:].rsplit(mark, 1)[0])
            restored = clear_leftover(path, mark, target)
            print(f"{path}: " + (f"put back as {target}" if restored else "removed"))
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main())
