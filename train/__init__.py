"""Thin gin/argparse mains for training; the logic lives in coderl_jax."""
