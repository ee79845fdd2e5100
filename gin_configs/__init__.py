"""The gin files shipped with coderl-jax (installed as package data `coderl_jax.gin_configs`):
models/ (network shapes), runs/ (one per training main, with %gin.REQUIRED-style macros),
experiments/ (a model file + run overrides). `coderl_jax.gin_utils` finds them through
importlib.resources, after the working directory."""
