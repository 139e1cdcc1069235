"""Parametric UMAP and vec2text gap filling, served over HTTP with a map page."""
