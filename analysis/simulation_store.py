"""The study's results store: one JSON file per finished replicate, inside the output folder.

    OUT/gmm-compare-manifest.json   the tool's manifest (the folder is ours)
    OUT/study.json                  the settings the replicates were computed with
    OUT/replicates/replicate-00001.json, ...
    OUT/index.html, coverage.png, summary.json   the report, remade from the store

Every file is written to a temporary name and renamed into place, so a replicate file is
complete or absent. A folder that is not empty is used only when it is one of our studies
(manifest and study.json); its settings must be the run's, but for the number of replicates
(a larger R adds replicates, a smaller one reports the first R), so stores are never mixed.
Each replicate's record carries the settings it was made with, and is read only when they are
the study's and every field has its type and length (`UnusableReplicateError` says why not).
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Any

from analysis.files import (
    KINDS,
    MANIFEST,
    STUDY,
    check_kind,
    check_parent,
    dumps,
    manifest_text,
    read_manifest,
    resolve_target,
)
from analysis.simulation import StudySettings, parameter_labels
from models.storage import write_atomically

STUDY_FILE = "study.json"
REPLICATES = "replicates"
REPORT_FILES = ("index.html", "coverage.png", "summary.json")
STUDY_NAMES = frozenset({STUDY_FILE, REPLICATES, *REPORT_FILES})
"""Every name a study folder may hold besides the manifest."""
MAX_RECORD_BYTES = 1_000_000
"""The most a replicate's file is read of: a record is a few kB, so a larger file is not one."""
PARTIAL = ".partial-"
"""Part of the name of a file being written (`write_atomically`); a killed run may leave one."""


class StudyStore:
    """The replicates stored in a study folder, read and written one file each."""

    def __init__(self, folder: Path, settings: StudySettings) -> None:
        self.folder = folder
        self.settings = settings
        digest = hashlib.sha256(json.dumps(settings.fingerprint(), sort_keys=True).encode())
        self.token = digest.hexdigest()[:12]

    def path(self, replicate: int) -> Path:
        """The file of replicate r."""
        return self.folder / REPLICATES / f"replicate-{replicate:05d}.json"

    def has(self, replicate: int) -> bool:
        """Whether replicate r is stored."""
        return self.path(replicate).is_file()

    def write(self, record: dict[str, Any]) -> Path:
        """Store one replicate's record (atomically); its path."""
        text = dumps(record)
        return write_atomically(
            self.path(int(record["replicate"])),
            lambda temporary: temporary.write_text(text, encoding="utf-8"),
        )

    def read(self, replicate: int) -> dict[str, Any]:
        """Replicate r's record; UnusableReplicateError if its file cannot stand for replicate r."""
        path = self.path(replicate)
        try:
            with path.open("rb") as file:
                text = file.read(MAX_RECORD_BYTES + 1)
            if len(text) > MAX_RECORD_BYTES:
                raise ValueError(f"larger than {MAX_RECORD_BYTES} bytes")
            record = json.loads(text)
        except (OSError, ValueError) as error:
            raise UnusableReplicateError(path, MALFORMED, str(error)) from None
        problem = record_problem(record, replicate, self.settings)
        if problem is not None:
            raise UnusableReplicateError(path, *problem)
        return record

    def unusable(self) -> dict[int, UnusableReplicateError]:
        """The stored replicates of 1..R that cannot be used, each with why, by replicate."""
        found = {}
        for replicate in range(1, self.settings.replicates + 1):
            if self.has(replicate):
                try:
                    self.read(replicate)
                except UnusableReplicateError as error:
                    found[replicate] = error
        return found

    def records(self) -> list[dict[str, Any]]:
        """The stored records of replicates 1..R, in order (all must be there)."""
        return [self.read(r) for r in range(1, self.settings.replicates + 1)]

    def write_file(self, name: str, content: str | bytes) -> None:
        """Write one of the report's files into the folder (atomically)."""

        def write(temporary: Path) -> None:
            if isinstance(content, bytes):
                temporary.write_bytes(content)
            else:
                temporary.write_text(content, encoding="utf-8")

        write_atomically(self.folder / name, write)

    def write_manifest(self) -> None:
        """The manifest: the study's kind and the names it holds now, replicates not listed.

        The replicates are written one by one as they finish and known by their names, so
        the manifest lists the top-level names; a study is resumed, never replaced.
        """
        entries = [p for p in self.folder.iterdir() if p.name in STUDY_NAMES]
        files = sorted(p.name for p in entries if not p.is_dir())
        folders = sorted(p.name for p in entries if p.is_dir())
        self.write_file(MANIFEST, manifest_text(STUDY, files, folders))


OTHER_SETTINGS = "made with other settings"
EARLIER_VERSION = "made by an earlier version, which did not record its settings"
MALFORMED = "unreadable or malformed"
"""Why a stored replicate cannot be used (`UnusableReplicateError.kind`)."""


class UnusableReplicateError(ValueError):
    """A stored replicate's file that cannot stand for its replicate: `kind` and `detail`."""

    def __init__(self, path: Path, kind: str, detail: str) -> None:
        super().__init__(f"stored replicate {str(path)!r} cannot be used: {kind} ({detail})")
        self.path, self.kind, self.detail = path, kind, detail


def recompute_note(unusable: dict[int, UnusableReplicateError]) -> str:
    """One line: how many stored replicates are computed again, by why, with a first example."""
    kinds: dict[str, list[UnusableReplicateError]] = {}
    for error in unusable.values():
        kinds.setdefault(error.kind, []).append(error)
    reasons = "; ".join(
        f"{len(errors)} {kind} ({errors[0].path.name}: {errors[0].detail})"
        for kind, errors in kinds.items()
    )
    return f"computing {len(unusable)} stored replicate(s) again: {reasons}"


def record_problem(record: Any, replicate: int, settings: StudySettings) -> tuple[str, str] | None:
    """(kind, detail) when `record` cannot stand for replicate r of the study, else None."""
    if not isinstance(record, dict):
        return MALFORMED, "not a JSON object"
    if record.get("replicate") != replicate or isinstance(record.get("replicate"), bool):
        return MALFORMED, f"replicate {record.get('replicate')!r}, not {replicate}"
    if "settings" not in record:
        return EARLIER_VERSION, "no settings"
    if record["settings"] != settings.fingerprint():
        return _settings_problem(record["settings"], settings.fingerprint())
    methods = record.get("methods")
    if not isinstance(methods, dict) or set(methods) != set(settings.interval_sets):
        shown = sorted(methods) if isinstance(methods, dict) else methods
        return MALFORMED, f"methods {shown!r}, not {list(settings.interval_sets)!r}"
    size = len(parameter_labels(settings.true_parameters))
    for name, entry in methods.items():
        problem = _entry_problem(entry, size, name == "nuts")
        if problem is not None:
            return MALFORMED, f"{name}: {problem}"
    return None


def _settings_problem(stored: Any, wanted: dict[str, Any]) -> tuple[str, str]:
    """(kind, detail) of a record's settings that are not the study's `wanted` ones."""
    if not isinstance(stored, dict):
        return MALFORMED, f"settings {stored!r}"
    keys = sorted(set(wanted) | set(stored))
    return OTHER_SETTINGS, ", ".join(
        f"{key} {stored.get(key)!r}, not {wanted.get(key)!r}"
        for key in keys
        if stored.get(key) != wanted.get(key)
    )


def _entry_problem(entry: Any, size: int, nuts: bool) -> str | None:
    """What is wrong with one method's entry (P = size parameters), or None."""
    if not isinstance(entry, dict) or entry.get("status") not in ("ok", "failed"):
        return "not an entry with status 'ok' or 'failed'"
    if not _is_number(entry.get("seconds")):
        return f"seconds {entry.get('seconds')!r}"
    if entry["status"] == "failed":
        return None if isinstance(entry.get("error"), str) else "a failure without its error"
    for key in ("estimate", "low", "high"):
        values = entry.get(key)
        if not (isinstance(values, list) and len(values) == size and all(map(_is_number, values))):
            return f"{key} is not {size} finite numbers"
    covered = entry.get("covered")
    if not (
        isinstance(covered, list) and len(covered) == size and all(type(c) is bool for c in covered)
    ):
        return f"covered is not {size} true/false values"
    if nuts and not (
        type(entry.get("first_on_worker")) is bool and _is_number(entry.get("compile_seconds"))
    ):
        return "first_on_worker or compile_seconds missing"
    return None


def _is_number(value: Any) -> bool:
    """Whether a JSON value is a finite number (not a bool)."""
    return type(value) in (int, float) and math.isfinite(value)


def check_store(out: Path, settings: StudySettings) -> StudyStore:
    """The store in folder `out` as it stands, nothing created; ValueError for a folder not ours.

    Refused before any work: a path that is a file, a folder that is not empty and not one of
    our studies, or a study made with other settings (the differing ones are named).
    """
    target = resolve_target(Path(out))
    if target.exists() and not target.is_dir():
        raise ValueError(f"output folder {str(out)!r} exists and is not a folder")
    if target.parent.is_dir():
        check_parent(target)  # writable? (it creates nothing, as the parent exists)
    if target.is_dir():
        _remove_partial_files(target)
        _check_ours(target, out)
        _check_settings(target, out, settings)
    return StudyStore(target, settings)


def open_store(out: Path, settings: StudySettings) -> StudyStore:
    """The store in folder `out`, created if new, holding the run's settings (`check_store`)."""
    store = check_store(out, settings)
    check_parent(store.folder)
    (store.folder / REPLICATES).mkdir(parents=True, exist_ok=True)
    store.write_file(STUDY_FILE, dumps(settings.as_dict()))
    store.write_manifest()
    return store


def _remove_partial_files(folder: Path) -> None:
    """Remove files a killed run was writing (temporary names of `write_atomically`)."""
    for where in (folder, folder / REPLICATES):
        if where.is_dir():
            for path in where.glob(f".*{PARTIAL}*"):
                if path.is_file():
                    path.unlink(missing_ok=True)


def _check_ours(target: Path, out: Path) -> None:
    """ValueError unless the folder is empty or a study this tool wrote (manifest, study.json)."""
    names = {p.name for p in target.iterdir()}
    if not names:
        return
    manifest = read_manifest(target)
    if manifest is None or (STUDY_FILE not in names and manifest.kind == STUDY):
        raise ValueError(
            f"output folder {str(out)!r} is not empty and not {KINDS[STUDY]} "
            f"(no {MANIFEST} listing {STUDY_FILE}): choose another --out, or move or empty "
            "that folder first"
        )
    check_kind(Path(out), manifest, STUDY)
    unexpected = sorted(names - STUDY_NAMES - {MANIFEST})
    if unexpected:
        raise ValueError(
            f"output folder {str(out)!r} holds files this tool did not write "
            f"({', '.join(unexpected[:5])}): choose another --out, or move them away"
        )


def _check_settings(target: Path, out: Path, settings: StudySettings) -> None:
    """ValueError if the folder's study was made with other settings (R may differ)."""
    path = target / STUDY_FILE
    try:
        stored = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise ValueError(f"cannot read the study's settings {str(path)!r}: {error}") from None
    if not isinstance(stored, dict):
        raise ValueError(f"the study's settings {str(path)!r} are not a JSON object")
    wanted = settings.fingerprint()
    keys = (set(wanted) | set(stored)) - {"replicates"}
    differing = sorted(key for key in keys if stored.get(key) != wanted.get(key))
    if differing:
        shown = "; ".join(
            f"{key}: stored {stored.get(key)!r}, asked {wanted.get(key)!r}" for key in differing
        )
        raise ValueError(
            f"output folder {str(out)!r} holds a study made with other settings ({shown}); "
            "its replicates cannot be mixed with these: choose another --out, or run with "
            "the stored settings to resume it"
        )
