"""Decoder-only code LMs (GPT-2, GPT-Neo, GPT-J, Qwen2) in Flax Linen, with HF interop,
a KV-cache sampler for left-padded prompts and the CodeRL critic head (docs/decoder_only.md)."""
