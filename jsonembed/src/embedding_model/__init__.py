"""An open-weight character-level CNN that embeds JSON records, trained from scratch."""
