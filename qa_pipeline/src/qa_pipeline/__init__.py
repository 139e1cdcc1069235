"""Scientific PDFs to Q&A pairs to a fine-tuned embedding model."""
