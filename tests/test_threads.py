"""Worker processes run every thread pool on one thread (torch's, BLAS's, OpenMP's)."""

from __future__ import annotations

import subprocess
import sys


def test_limit_threads_limits_blas_and_openmp_pools_too() -> None:
    """In a fresh process (the limit is process-wide): NumPy's BLAS and scikit-learn's OpenMP
    would otherwise run one thread per core in every worker, oversubscribing the cores."""
    code = (
        "import marlmod.pipeline, torch, threadpoolctl\n"
        "from marlmod.train import limit_threads\n"
        "limit_threads()\n"
        "pools = threadpoolctl.threadpool_info()\n"
        "assert {p['user_api'] for p in pools} >= {'blas', 'openmp'}, pools\n"
        "assert all(p['num_threads'] == 1 for p in pools), pools\n"
        "assert torch.get_num_threads() == 1\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
