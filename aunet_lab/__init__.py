"""aunet_lab: a research platform for byte-level hierarchical language models (AU-Net)."""

__version__ = "0.1.0"
