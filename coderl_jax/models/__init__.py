"""Flax T5 encoder-decoder, critic head, Hugging Face checkpoint conversion."""
