"""What a call computes: synthetic batches, real per-language text from the corpus,
tokenizers, padding policies and packing."""
