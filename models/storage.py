"""Saving and loading a posterior DataTree as one netCDF-4 file, without loss.

`write_atomically` is the project's one way to write a file: the content goes to a temporary
file beside the target, gets the permissions a plainly created file would have, and is renamed
over the target, so a failed or interrupted write leaves any earlier file intact. The analysis
package writes its files through it too (models cannot import analysis; analysis may use models).
This module imports xarray only when a posterior is read or written, so that writing a text
file does not pay for it.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from xarray import DataTree


def current_umask() -> int:
    """The process's file-creation mask (read by setting and restoring it)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def usual_mode(is_folder: bool) -> int:
    """The permissions a new folder or file gets from open() and mkdir(), after the umask."""
    return (0o777 if is_folder else 0o666) & ~current_umask()


def write_atomically(
    path: str | os.PathLike[str], write: Callable[[Path], None], mode: int | None = None
) -> Path:
    """Call write(temporary) on a fresh path beside `path`, then rename it over `path`.

    The temporary file (mkstemp's, private) is given `mode`, or the usual permissions, before
    the rename, whatever the writer did to it; on any failure or interrupt it is removed and
    `path` is untouched. Returns `path` as a Path.
    """
    target = Path(path)
    handle, name = tempfile.mkstemp(prefix=f".{target.name}.partial-", dir=target.parent)
    os.close(handle)
    temporary = Path(name)
    try:
        write(temporary)
        temporary.chmod(usual_mode(False) if mode is None else mode)
        os.replace(temporary, target)
    except BaseException as error:
        temporary.unlink(missing_ok=True)
        if isinstance(error, OSError) and error.filename is None:  # a failed write names none
            error.filename = str(target)
        raise
    return target


def save_posterior(idata: DataTree, path: str | os.PathLike[str]) -> Path:
    """Write idata to the netCDF file `path` (atomically, see `write_atomically`); the path.

    Numeric variables are compressed losslessly (`compression_encoding`). The file is built in
    memory and written by Python: HDF5 writing to a disk that refuses (full, or a file size
    limit) prints "Exception ignored" tracebacks and may crash the process later, whereas
    Python's write raises one OSError. netCDF-4 (groups) needs h5netcdf.
    """
    content = idata.to_netcdf(encoding=compression_encoding(idata), engine="h5netcdf")
    return write_atomically(path, lambda temporary: temporary.write_bytes(content))


def compression_encoding(idata: DataTree) -> dict[str, dict[str, dict[str, object]]]:
    """The netCDF encoding that compresses every numeric variable losslessly (shuffle + zlib).

    Keyed by group path, as `DataTree.to_netcdf` takes it. The shuffle filter groups the bytes
    of each value by significance, which lets zlib shrink the float32 log-likelihood by a fourth.
    """
    return {
        node.path: {
            name: {"zlib": True, "complevel": 4, "shuffle": True}
            for name, variable in node.dataset.data_vars.items()
            if variable.dtype.kind in "fiub" and variable.ndim > 0
        }
        for node in idata.subtree
    }


def load_posterior(path: str | os.PathLike[str]) -> DataTree:
    """Read a DataTree written by `save_posterior` fully into memory (the file is closed)."""
    import xarray as xr

    with xr.open_datatree(path) as tree:
        return tree.load()
