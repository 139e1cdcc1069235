"""Isotropic Gaussian embeddings (LeJEPA SIGReg) and a Euclidean GaussianRetriever."""
