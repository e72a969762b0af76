"""The study's results store: one JSON file per finished replicate, inside the output folder.

    OUT/gmm-compare-manifest.json   the tool's manifest (the folder is ours)
    OUT/study.json                  the settings the replicates were computed with
    OUT/replicates/replicate-00001.json, ...
    OUT/index.html, coverage.png, summary.json   the report, remade from the store

Every file is written to a temporary name and renamed into place, so a replicate file is
complete or absent. A folder that is not empty is used only when it is one of our studies
(manifest and study.json); its settings must be the run's, but for the number of replicates
(a larger R adds replicates, a smaller one reports the first R), so stores are never mixed.
"""

from __future__ import annotations

import hashlib
import json
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
from analysis.simulation import StudySettings
from models.storage import write_atomically

STUDY_FILE = "study.json"
REPLICATES = "replicates"
REPORT_FILES = ("index.html", "coverage.png", "summary.json")
STUDY_NAMES = frozenset({STUDY_FILE, REPLICATES, *REPORT_FILES})
"""Every name a study folder may hold besides the manifest."""
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
        """Replicate r's record; ValueError if its file is not a replicate's JSON."""
        path = self.path(replicate)
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            raise ValueError(f"cannot read stored replicate {str(path)!r}: {error}") from None
        if not isinstance(record, dict) or record.get("replicate") != replicate:
            raise ValueError(f"stored replicate {str(path)!r} is not replicate {replicate}")
        return record

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


def open_store(out: Path, settings: StudySettings) -> StudyStore:
    """The store in folder `out`, created if new; ValueError for a folder that is not ours.

    Refused before any work: a path that is a file, a folder that is not empty and not one of
    our studies, or a study made with other settings (the differing ones are named).
    """
    target = resolve_target(Path(out))
    if target.exists() and not target.is_dir():
        raise ValueError(f"output folder {str(out)!r} exists and is not a folder")
    check_parent(target)
    if target.is_dir():
        _remove_partial_files(target)
        _check_ours(target, out)
        _check_settings(target, out, settings)
    (target / REPLICATES).mkdir(parents=True, exist_ok=True)
    store = StudyStore(target, settings)
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
