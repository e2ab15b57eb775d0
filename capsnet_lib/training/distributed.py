"""Data-parallel training with PyTorch's own engine: `torchrun --nproc_per_node N -m capsnet_lib.train`.

torchrun starts N processes and tells each its rank through environment variables. Every
process holds the whole model (DistributedDataParallel keeps the copies equal by averaging the
gradients), walks through the same shuffled batches, and trains on its own shard of each: rows
rank, rank + N, rank + 2N, ... So the global batch, and the result, are those of one process
(within float noise); only rank 0 validates and writes files. NCCL on GPUs, gloo on CPUs.
"""
import os

import torch
import torch.distributed as dist


def world_size():
    """The number of processes torchrun started (1 when run as a plain program)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def rank():
    # torchrun's RANK also after the group is left (the command prints its summary on rank 0 only)
    return dist.get_rank() if dist.is_initialized() else int(os.environ.get("RANK", 0))


def is_main_process():
    return rank() == 0


def join(device):
    """Join torchrun's process group. On CUDA each process takes GPU number LOCAL_RANK.
    Returns the device this process trains on."""
    device = torch.device(device)
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    elif device.type != "cpu":
        raise ValueError(f"distributed training runs on cuda (NCCL) or cpu (gloo), not on {device.type}")
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return device


def leave():
    if dist.is_initialized():
        dist.destroy_process_group()


def shard(images, labels):
    """This process's rows of a global batch, and its share of the batch's loss.

    Each process averages the loss over its own rows and DDP averages the gradients over the
    processes, so a process's loss is weighted by (its rows x processes / all rows): then the
    sum over processes is the global batch's mean, even when the shards differ by one row.
    """
    world, r = dist.get_world_size(), dist.get_rank()
    local_images, local_labels = images[r::world], labels[r::world]
    return local_images, local_labels, local_labels.shape[0] * world / labels.shape[0]


def average(tensor):
    """The mean of a tensor over all processes (identity when not distributed)."""
    if dist.is_initialized():
        tensor = tensor.clone()
        dist.all_reduce(tensor)
        tensor /= dist.get_world_size()
    return tensor
