"""Lightning strategies by name: DDP, FSDP (Lightning's FSDPStrategy, GPUs only) and FSDP2
(Lightning's ModelParallelStrategy with ``fully_shard`` per transformer block; CPU or GPU)."""

from __future__ import annotations

import torch


def build_strategy(trainer_config):
    """The ``strategy=`` argument for ``pl.Trainer`` from the trainer section."""
    name = trainer_config.strategy
    if name in ("auto", "ddp"):
        return name
    from aunet_lab.models.blocks import Block

    if name == "fsdp":
        from lightning.pytorch.strategies import FSDPStrategy

        sharding = {"full": "FULL_SHARD", "hybrid": "HYBRID_SHARD", "grad_op": "SHARD_GRAD_OP",
                    "none": "NO_SHARD"}[trainer_config.sharding]
        return FSDPStrategy(auto_wrap_policy={Block}, sharding_strategy=sharding, state_dict_type="full",
                            activation_checkpointing_policy={Block} if trainer_config.activation_checkpointing else None)
    from lightning.pytorch.strategies import ModelParallelStrategy

    # Every process holds a shard (data parallel over all of them); tensor parallelism is not used.
    # Checkpoints are gathered into one file so that resume, warm start and generation read them as usual.
    devices = trainer_config.devices
    if not isinstance(devices, int) or devices < 1:
        devices = torch.cuda.device_count() if torch.cuda.is_available() else 1
    return ModelParallelStrategy(data_parallel_size=devices * trainer_config.num_nodes, tensor_parallel_size=1,
                                 save_distributed_checkpoint=False)


def shard_blocks(model: torch.nn.Module, mesh, activation_checkpointing: bool = False, reshard: bool = True) -> None:
    """FSDP2: each transformer block is one sharded unit, then the rest of the model (embeddings,
    pooling, upsampling, head) is the root unit."""
    from torch.distributed.fsdp import fully_shard

    from aunet_lab.models.blocks import Block

    blocks = [m for m in model.modules() if isinstance(m, Block)]
    if activation_checkpointing:
        from torch.distributed.algorithms._checkpoint.checkpoint_wrapper import apply_activation_checkpointing

        apply_activation_checkpointing(model, check_fn=lambda m: isinstance(m, Block))
    for block in blocks:
        fully_shard(block, mesh=mesh, reshard_after_forward=reshard)
    fully_shard(model, mesh=mesh, reshard_after_forward=reshard)
