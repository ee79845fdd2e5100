"""Running untrusted programs against unit tests. Never imports JAX."""
