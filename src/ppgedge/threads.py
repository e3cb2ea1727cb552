"""How many CPU threads the numeric libraries may use.

PyTorch and the BLAS libraries start one thread per core and spin while waiting; when the cores
are shared (CI runners, a second job, a benchmark beside a run) that slowed a run 13-fold here.
``--threads N`` / ``[run] threads`` caps them: the environment variables the libraries read at
start-up are set before they are imported, and PyTorch is told directly if it already is.
"""

from __future__ import annotations

import os
import sys

THREAD_VARIABLES = (
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "NUMEXPR_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
)


def limit_threads(n: int) -> None:
    """Use at most ``n`` threads for PyTorch's and the BLAS libraries' parallel kernels."""
    for name in THREAD_VARIABLES:
        os.environ[name] = str(n)
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(n)
