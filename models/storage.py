"""Saving and loading a posterior DataTree as one netCDF-4 file, without loss."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import xarray as xr
from xarray import DataTree


def save_posterior(idata: DataTree, path: str | os.PathLike[str]) -> Path:
    """Write idata to the netCDF file `path` and return the path.

    The file is written next to `path` under a temporary name and renamed into place, so a
    failed write leaves any earlier file intact. netCDF-4 (groups) needs h5netcdf or netCDF4.
    """
    target = Path(path)
    handle, temporary = tempfile.mkstemp(
        prefix=f".{target.name}.", suffix=".tmp", dir=target.parent
    )
    os.close(handle)
    try:
        idata.to_netcdf(temporary)
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return target


def load_posterior(path: str | os.PathLike[str]) -> DataTree:
    """Read a DataTree written by `save_posterior` fully into memory (the file is closed)."""
    with xr.open_datatree(path) as tree:
        return tree.load()
