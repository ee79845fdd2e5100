"""Returns, baselines, token values, losses and the online learner loop."""
