"""The torchrun processes of a distributed run (a single process when not launched by torchrun)."""

import os

import torch
import torch.distributed as dist

from .runs import resolve_device


class Processes:
    """This process's place among the torchrun processes (environment variables ``RANK``, ``WORLD_SIZE``,
    ``LOCAL_RANK``); a single process without them. Joins the process group on creation (NCCL on CUDA,
    gloo on the CPU) and leaves it in :meth:`close`."""

    def __init__(self, device_arg: str):
        self.world_size = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        self.distributed = self.world_size > 1
        self.device = resolve_device(device_arg, self.local_rank)
        if self.device.type == "cuda":
            torch.cuda.set_device(self.device)
        if self.distributed and not dist.is_initialized():
            dist.init_process_group("nccl" if self.device.type == "cuda" else "gloo")

    @property
    def main(self) -> bool:
        return self.rank == 0

    def all_gather(self, obj) -> list:
        """Every process's ``obj`` in rank order (``[obj]`` in a single process)."""
        if not self.distributed:
            return [obj]
        gathered = [None] * self.world_size
        dist.all_gather_object(gathered, obj)
        return gathered

    def all_reduce(self, tensor: torch.Tensor) -> torch.Tensor:
        """The sum of ``tensor`` over the processes (in place)."""
        if self.distributed:
            dist.all_reduce(tensor)
        return tensor

    def barrier(self):
        if self.distributed:
            dist.barrier()

    def broadcast(self, obj):
        """Rank 0's ``obj`` on every process."""
        if not self.distributed:
            return obj
        container = [obj]
        dist.broadcast_object_list(container, src=0)
        return container[0]

    def broadcast_buffers(self, module: torch.nn.Module):
        """Rank 0's buffers (batch-norm statistics) on every process."""
        if self.distributed:
            for buffer in module.buffers():
                dist.broadcast(buffer, src=0)

    def wrap(self, model: torch.nn.Module) -> torch.nn.Module:
        """``model`` in DistributedDataParallel when distributed, else itself."""
        if not self.distributed:
            return model
        device_ids = [self.device.index] if self.device.type == "cuda" else None
        return torch.nn.parallel.DistributedDataParallel(model, device_ids=device_ids)

    def close(self):
        if self.distributed and dist.is_initialized():
            dist.destroy_process_group()
