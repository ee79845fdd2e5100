"""Thin argparse mains for generation, execution and evaluation; logic lives in coderl_jax."""
