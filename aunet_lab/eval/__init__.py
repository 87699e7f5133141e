"""Evaluation beyond bits per byte: character-level tasks (and, next, diagnostics) for AU-Net and BPE alike."""
