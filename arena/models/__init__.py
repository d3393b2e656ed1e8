"""Model sources (embedded default, Hub id, local directory, synthetic), GGUF conversion,
synthetic weights, tokenizers, dtypes and placement over devices."""
