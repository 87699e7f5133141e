"""Data: manifests, corpora, split functions, tokenizers and loaders."""
