"""Models: AU-Net, the BPE-token baseline, sizing, cached generation. Imports only torch and regex."""

from aunet_lab.data.byte_ids import BOS_ID, BYTE_VOCAB, EOS_ID
from aunet_lab.models.aunet import AUNet, AUNetConfig, ConfigError, StageConfig
from aunet_lab.models.baseline import TokenTransformer, TransformerConfig


def preset(name: str, device: str = "meta"):
    """A model of the paper's Table 9 by name, on the meta device by default (no memory)."""
    from aunet_lab.models.sizing import preset as _preset

    return _preset(name, device=device)


__all__ = [
    "AUNet", "AUNetConfig", "StageConfig", "TokenTransformer", "TransformerConfig", "ConfigError",
    "BOS_ID", "EOS_ID", "BYTE_VOCAB", "preset",
]
