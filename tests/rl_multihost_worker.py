"""Runs `coderl train-rl ARGS...` as one process of a (possibly) multi-process JAX job and
dumps the final actor params as this process holds them to PARAMS_NPZ.

    python tests/rl_multihost_worker.py PARAMS_NPZ train-rl --workdir ... [--gin.X=V ...]

The job comes from the environment (COORDINATOR_ADDRESS, NUM_PROCESSES, PROCESS_ID; see
`loop.maybe_initialize_distributed`); the CPU collectives are pinned to 127.0.0.1
(tests/multihost_worker.py).
"""

import sys

import numpy as np


def dump_final_params(path: str) -> None:
    """Wrap `model_io.save_final` (the RL stage's last call) to save the params it is given."""
    import jax

    from coderl_jax.training import model_io

    save_final = model_io.save_final

    def wrapped(workdir, init, state, **kwargs):
        flat = {}
        for key_path, leaf in jax.tree_util.tree_flatten_with_path(state.params)[0]:
            assert leaf.is_fully_replicated, key_path
            flat[jax.tree_util.keystr(key_path)] = np.asarray(leaf.addressable_data(0))
        np.savez(path, process_index=jax.process_index(), process_count=jax.process_count(),
                 step=int(jax.device_get(state.step)), **flat)
        return save_final(workdir, init, state, **kwargs)

    model_io.save_final = wrapped


def main() -> int:
    from multihost_worker import pin_gloo_to_loopback

    out, argv = sys.argv[1], sys.argv[2:]
    pin_gloo_to_loopback()
    dump_final_params(out)
    from coderl_jax.cli import main as coderl

    return coderl(argv)


if __name__ == "__main__":
    sys.exit(main())
