"""Build a RAG training set (the command of the guide): a shim for ``python -m embedding_ft.cli.rag_dataset``."""

from embedding_ft.cli.rag_dataset import main

if __name__ == "__main__":
    raise SystemExit(main())
