"""NUTS compiled end to end: nutpie's sampler calling the hand-written density as a C function.

PyMC's NUTS builds each trajectory in Python, about 70 µs a leapfrog step beside the density's
40 µs. nutpie (maintained by PyMC's developers) runs the whole sampler in Rust, its chains on
one thread per core; handed `models.posterior_density`'s kernels as Numba C callbacks
(`numba.cfunc`), it runs no Python between the first and the last draw. The callbacks read the
data and the priors' constants through nutpie's user-data pointer, so one compiled callback per
prior serves every dataset and shape, and Numba caches it beside `models/posterior_density.py`.

nutpie records the raveled value point of each draw; `PosteriorDensity.constrained` turns the
draws into the model's variables afterwards, in NumPy.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numba
import numpy as np
from arviz_base import from_dict
from numba import types
from numba.core.ccallback import CFunc

from em_reference import MixtureParameters
from models.mixture import observed_data
from models.nuts_setup import DENSE_MAX_SIZE, NutsRun, laplace_cholesky, start_point
from models.posterior_density import PosteriorDensity

if TYPE_CHECKING:
    import pymc as pm

EXPAND_SIGNATURE = types.int64(
    types.uint64, types.uint64, types.voidptr, types.voidptr, types.voidptr
)
"""nutpie's recording callback: (p, recorded size, point, recorded out, table) -> status."""

MASS_MATRICES = {"diag": "diag", "low-rank": "low_rank"}
"""The mass matrices nutpie adapts, by our name: its default, a diagonal estimated from draws and
gradients, or that diagonal with a low-rank update."""


STAT_NAMES = {
    "diverging": "diverging",
    "energy": "energy",
    "energy_error": "energy_error",
    "logp": "lp",
    "n_steps": "n_steps",
    "depth": "tree_depth",
    "maxdepth_reached": "reached_max_treedepth",
    "mean_tree_accept": "acceptance_rate",
    "step_size": "step_size",
    "step_size_bar": "step_size_bar",
    "index_in_trajectory": "index_in_trajectory",
}
"""nutpie's sample statistics kept, by the names PyMC gives them."""


def _copy_point(size, recorded_size, point_, recorded_, table_):
    """The recording callback nutpie calls (`EXPAND_SIGNATURE`): the raveled point itself."""
    point = numba.carray(point_, (size,), np.float64)
    numba.carray(recorded_, (recorded_size,), np.float64)[:] = point
    return 0


@functools.cache
def _recording_callback() -> CFunc:
    """`_copy_point` compiled (or loaded from Numba's cache) on first use."""
    return numba.cfunc(EXPAND_SIGNATURE, cache=True)(_copy_point)


@dataclass
class CompiledDraws:
    """Draws of the raveled value point and the sampler's statistics, as nutpie made them.

    points (chains, draws, p); stats name -> (chains, draws), in PyMC's names; sampling_seconds
    the wall time of tuning and drawing.
    """

    points: np.ndarray
    stats: dict[str, np.ndarray]
    sampling_seconds: float


def nutpie_model(density: PosteriorDensity, start: Callable[[int], np.ndarray]) -> Any:
    """The density as nutpie's compiled model; start(seed) gives a chain's raveled start (p,)."""
    from nutpie.compile_pymc import CompiledPyMCModel

    size = density.size
    return CompiledPyMCModel(
        compiled_logp_func=density.callback,
        compiled_expand_func=_recording_callback(),
        initial_point_func=start,
        shared_data={"density": density},  # keeps the table's arrays alive
        shared_var_keys={},
        user_data=density.table,
        n_expanded=size,
        shape_info=(["point"], [None], [(size,)]),
        logp_func=None,
        expand_func=None,
        _n_dim=size,
        _shapes={"point": (size,)},
        _coords={},
        dims={},
    )


def _from_arrow(results: Any, seconds: float) -> CompiledDraws:
    """The draws after tuning from nutpie's raw (Arrow) trace."""
    import pyarrow as pa

    draw_batches, stat_batches = results.get_arrow_trace()
    points, stats = [], {name: [] for name in STAT_NAMES.values()}
    for draw_batch, stat_batch in zip(draw_batches, stat_batches, strict=True):
        draw_table, stat_table = pa.table(draw_batch), pa.table(stat_batch)
        kept = ~stat_table.column("tuning").to_numpy(zero_copy_only=False)
        column = draw_table.column("point").combine_chunks()
        values = column.flatten().to_numpy().reshape(len(column), -1)
        points.append(values[kept])
        for name, ours in STAT_NAMES.items():
            stats[ours].append(stat_table.column(name).to_numpy(zero_copy_only=False)[kept])
    return CompiledDraws(
        np.stack(points), {name: np.stack(values) for name, values in stats.items()}, seconds
    )


class RunningNuts:
    """NUTS by nutpie on a `build_model` model, its chains sampling in nutpie's threads.

    `result` waits for them and gives the DataTree (`start_density` says what it holds);
    `cancel` stops them. `setup_seconds` is the set-up's time, before the chains started.
    """

    def __init__(
        self,
        model: pm.Model,
        density: PosteriorDensity,
        compiled: Any,
        run: NutsRun,
        setup_seconds: float,
    ) -> None:
        import nutpie

        self.model = model
        self.density = density
        self.setup_seconds = setup_seconds
        self.started = time.perf_counter()
        self.sampler = nutpie.sample(
            compiled,
            draws=run.draws,
            tune=run.tune,
            chains=run.chains,
            cores=run.cores,
            seed=run.random_seed,
            target_accept=run.target_accept,
            adaptation=MASS_MATRICES[run.mass_matrix],
            save_warmup=False,
            progress_bar=run.progressbar,
            return_raw_trace=True,
            blocking=False,
        )

    def result(self) -> Any:
        """The DataTree once every chain has finished; an interrupt stops them and is raised."""
        try:
            results = self.sampler.wait()
        except BaseException:
            self.cancel()
            raise
        draws = _from_arrow(results, time.perf_counter() - self.started)
        self.sampler = None  # see `cancel`
        return draws_tree(self.model, self.density, draws)

    def cancel(self) -> None:
        """Stop the chains (nothing happens once they have finished).

        nutpie's sampler is dropped at once: it joins its threads, which a forked copy of this
        process has not got, so it must not be left for a garbage collector to find.
        """
        if self.sampler is not None:
            self.sampler.cancel()
            self.sampler = None


def start_density(model: pm.Model, reference: MixtureParameters, run: NutsRun) -> RunningNuts:
    """Start NUTS by nutpie on a `build_model` model; its `result` is a DataTree like `pm.sample`'s.

    Groups posterior (the model's variables, unlabelled), sample_stats (PyMC's names, see
    `STAT_NAMES`) and observed_data; the posterior attrs hold `sampling_seconds`. Every chain
    starts at a Laplace draw around the reference (`models.nuts_setup.start_point`), seeded by
    nutpie from `run.random_seed`, so the same seed gives the same draws whatever `run.cores`.
    The set-up (the density loaded or compiled, the Laplace approximation) is done here; the
    chains then sample in nutpie's threads while the caller goes on.
    """
    started = time.perf_counter()
    density = PosteriorDensity(model)
    centre = density.raveled_point(reference).data
    spread = None
    if density.size <= DENSE_MAX_SIZE:
        spread = laplace_cholesky(lambda x: density(x)[1], centre)

    def start(seed: int) -> np.ndarray:
        rng = np.random.default_rng(seed)
        return start_point(lambda x: density(x)[0], centre, spread, rng)

    compiled = nutpie_model(density, start)
    return RunningNuts(model, density, compiled, run, time.perf_counter() - started)


def draws_tree(model: pm.Model, density: PosteriorDensity, result: CompiledDraws) -> Any:
    """The DataTree of the model's variables at nutpie's draws, as `pm.sample` lays it out."""
    values = density.constrained(result.points)
    names = [var.name for var in model.unobserved_RVs]
    dims = {name: list(model.named_vars_to_dims.get(name, ())) for name in names}
    observed = model.observed_RVs[0].name
    dims[observed] = list(model.named_vars_to_dims[observed])
    tree = from_dict(
        {
            "posterior": {name: values[name] for name in names},
            "sample_stats": result.stats,
            "observed_data": {observed: observed_data(model)},
        },
        coords={name: np.asarray(values) for name, values in model.coords.items()},
        dims=dims,
    )
    tree["posterior"].attrs["sampling_seconds"] = result.sampling_seconds
    return tree
