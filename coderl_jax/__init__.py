"""coderl-jax: CodeRL (Le et al., NeurIPS 2022) in JAX/Flax.

Importing the package is cheap: subpackages that need JAX import it themselves, so the
sandbox and the `coderl execute` / `coderl evaluate` commands never load it.
"""

__version__ = "0.1.0"
