"""Contrastive fine-tuning of sentence-transformers models with hard-negative mining."""
