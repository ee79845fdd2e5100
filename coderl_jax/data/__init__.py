"""Problems, loaders, prompts, the synthetic benchmark and pretraining data."""
