"""Runs `coderl ARGS...` as one process of a (possibly) multi-process JAX job and dumps the
final train state's params as this process holds them to PARAMS_NPZ.

    python tests/multihost_worker.py PARAMS_NPZ finetune --workdir ... [--gin.X=V ...]

The job comes from the environment the training mains read (COORDINATOR_ADDRESS,
NUM_PROCESSES, PROCESS_ID; `loop.maybe_initialize_distributed`). Test-only: the CPU
collectives (gloo) are pinned to 127.0.0.1, whatever the host name resolves to.
"""

import functools
import sys

import numpy as np


def pin_gloo_to_loopback() -> None:
    from jax._src import xla_bridge

    make = xla_bridge._jax.make_gloo_tcp_collectives
    xla_bridge._jax.make_gloo_tcp_collectives = functools.partial(make, hostname="127.0.0.1")


def dump_final_params(path: str) -> None:
    """Wrap `loop.run_training` so its final params (replicated: mesh_model=1) are saved."""
    import jax

    from coderl_jax.training import loop

    run_training = loop.run_training

    def wrapped(**kwargs):
        state = run_training(**kwargs)
        flat = {}
        for key_path, leaf in jax.tree_util.tree_flatten_with_path(state.params)[0]:
            assert leaf.is_fully_replicated, key_path
            flat["/".join(str(k.key) for k in key_path)] = np.asarray(leaf.addressable_data(0))
        np.savez(path, process_index=jax.process_index(),
                 process_count=jax.process_count(), **flat)
        return state

    loop.run_training = wrapped


def main() -> int:
    out, argv = sys.argv[1], sys.argv[2:]
    pin_gloo_to_loopback()
    dump_final_params(out)
    from coderl_jax.cli import main as coderl

    return coderl(argv)


if __name__ == "__main__":
    sys.exit(main())
