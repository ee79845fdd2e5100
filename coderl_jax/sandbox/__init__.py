"""Running untrusted programs against unit tests. Never imports JAX.

    from coderl_jax.sandbox import Executor, Verdict

Modules: executor (the pool and its API), worker (the process that forks one child per
program and judges it), worker_tests (test code the worker runs itself: HumanEval's
`check`, non-literal asserts), runner (what runs in that child), isolation (namespaces,
limits, reaping), compare (output comparison rules).
"""

from __future__ import annotations

__all__ = ["Executor", "Verdict"]


def __getattr__(name):
    # Lazy so that the worker process, which imports coderl_jax.sandbox.worker, does not
    # pay for the executor's imports (threads, subprocess, concurrent.futures).
    if name in __all__:
        from coderl_jax.sandbox import executor

        return getattr(executor, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
