"""Every function copes with empty inputs: no series, series without samples, no steps."""

from __future__ import annotations

import numpy as np
import pytest

from promql.eval.functions.registry import FUNCTIONS
from promql.value import StepRange, StepScalar, StepVector, String
from storage.labels import Labels
from tests.promql.functions.helpers import call

RANGE_FUNCS = sorted(
    name
    for name in FUNCTIONS
    if name.endswith("_over_time")
    or name in {"rate", "increase", "delta", "irate", "idelta", "deriv", "resets", "changes"}
)


def empty_range(nseries: int, nsteps: int) -> StepRange:
    labels = [Labels.from_dict({"__name__": "m", "i": str(i)}) for i in range(nseries)]
    zeros = np.zeros((nseries, nsteps), dtype=np.int64)
    return StepRange(
        labels,
        np.zeros(nseries + 1, dtype=np.int64),
        np.zeros(0, dtype=np.int64),
        np.zeros(0),
        zeros,
        zeros.copy(),
        np.arange(nsteps, dtype=np.int64) * 1000,
        60_000,
    )


def args_for(name: str, rng: StepRange, nsteps: int) -> tuple:
    q = StepScalar(np.full(nsteps, 0.5))
    if name == "quantile_over_time":
        return (q, rng)
    if name == "predict_linear":
        return (rng, q)
    if name == "double_exponential_smoothing":
        return (rng, q, q)
    return (rng,)


@pytest.mark.parametrize("name", [*RANGE_FUNCS, "predict_linear", "double_exponential_smoothing"])
@pytest.mark.parametrize(("nseries", "nsteps"), [(0, 5), (3, 5), (3, 0), (0, 0)])
def test_range_functions_on_empty_input(name, nseries, nsteps):
    rng = empty_range(nseries, nsteps)
    out = call(name, list(range(nsteps)), *args_for(name, rng, nsteps))
    assert isinstance(out, StepVector)
    assert out.values.shape[1:] == (nsteps,)
    assert not out.present.any()


VECTOR_FUNCS = ["abs", "ceil", "exp", "sgn", "round", "year", "label_join", "histogram_quantile"]


@pytest.mark.parametrize("name", VECTOR_FUNCS)
def test_vector_functions_on_an_empty_vector(name):
    vec = StepVector([], np.zeros((0, 4)), np.zeros((0, 4), dtype=bool))
    args = {
        "label_join": (vec, String("dst"), String("-"), String("a")),
        "histogram_quantile": (StepScalar(np.full(4, 0.5)), vec),
    }.get(name, (vec,))
    out = call(name, [0, 1, 2, 3], *args)
    assert out.num_series == 0
