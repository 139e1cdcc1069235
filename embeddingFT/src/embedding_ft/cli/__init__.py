"""Command-line entry points: train, infer, evaluate."""
