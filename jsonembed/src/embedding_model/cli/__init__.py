"""Command-line entry points: ``python -m embedding_model.cli.{train,search,embed,evaluate}``."""
