"""The machine and libraries a benchmark ran on, for results.json and results.md."""

from __future__ import annotations

import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

LIBRARIES = ("numpy", "scipy", "scikit-learn", "pymc", "pytensor", "arviz", "numba", "nutpie")


def cpu_model() -> str:
    """The CPU model name from /proc/cpuinfo (or the platform's processor string)."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def memory_gib() -> float | None:
    """Total memory in GiB from /proc/meminfo, if readable."""
    meminfo = Path("/proc/meminfo")
    if not meminfo.exists():
        return None
    for line in meminfo.read_text().splitlines():
        if line.startswith("MemTotal:"):
            return round(int(line.split()[1]) / 2**20, 1)
    return None


def library_versions() -> dict[str, str]:
    """Installed versions of the libraries that matter here (absent ones omitted)."""
    versions = {}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def blas_threads() -> list[dict[str, Any]]:
    """BLAS libraries and their default thread counts, via threadpoolctl if installed."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return []
    return [
        {key: pool.get(key) for key in ("internal_api", "version", "num_threads")}
        for pool in threadpool_info()
    ]


def busy_processes(own_pid: int, threshold: float = 20.0) -> list[str]:
    """Other processes using more than `threshold` % CPU right now (others' work on the box)."""
    try:
        listing = subprocess.run(
            ["ps", "-eo", "pid,pcpu,comm", "--sort=-pcpu"],
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    busy = []
    for line in listing.splitlines()[1:]:
        pid, cpu, command = line.split(None, 2)
        if int(pid) != own_pid and float(cpu) > threshold:
            busy.append(f"{command} ({cpu} % CPU)")
    return busy


def describe() -> dict[str, Any]:
    """Cores, CPU, memory, OS, Python, library versions, BLAS threads and current load."""
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu_model(),
        "memory_gib": memory_gib(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "libraries": library_versions(),
        "blas": blas_threads(),
        "load_average": list(os.getloadavg()),
        "other_busy_processes": busy_processes(os.getpid()),
    }
