"""CodeRL's reinforcement-learning half: return estimators, token values, losses, the learner.

`returns` (pure numpy) turns per-sample returns and critic token values into the signed
per-token weights of the one weighted cross-entropy; `losses` holds that loss. Submodules are
imported explicitly (nothing here), so importing the package loads neither JAX nor numpy.
"""
