"""aunet_lab: a research platform for byte-level hierarchical language models (AU-Net)."""

__version__ = "0.1.0"


def load(path):
    """A trained model, ready to score and generate, from an export folder (``aunet-lab export``),
    a checkpoint, or a run folder: see :class:`aunet_lab.loaded.LoadedModel`."""
    from aunet_lab.loaded import load as _load

    return _load(path)
