"""The yardstick for dae_dist's CPU speed: the same job written the way a good PyTorch user would.

Same network, loss, optimizer, per-rank batch and Gaussian noise as dae_dist, data-parallel with
DistributedDataParallel over gloo, one intra-op thread per rank, each rank reading only its own
rows of the same HDF5 file. Start it with mpirun (it reads Open MPI's rank variables):

    mpirun -np 2 .venv/bin/python bench/ddp_reference.py --data data/mnist.h5 --steps 600

Prints one JSON line on rank 0: samples/s over the steps after --warmup, peak RSS per rank.
--threads 0 leaves PyTorch's own intra-op thread count; --compile runs the step through
torch.compile with Adam's fused kernel (the peer at its best: bench/speed_vs_pytorch.sh runs every
form).
"""
import argparse
import json
import os
import resource
import time

import h5py
import torch
import torch.distributed as dist
import torch.nn as nn
from torch.nn.parallel import DistributedDataParallel


class ConvDae(nn.Module):
    """The seed network: 28 -> 14 -> 7 (x32 code) -> 14 -> 28, ReLU after every layer."""

    def __init__(self):
        super().__init__()
        self.encoder = nn.Sequential(
            nn.Conv2d(1, 16, 5, stride=2, padding=2), nn.ReLU(),
            nn.Conv2d(16, 32, 5, stride=2, padding=2), nn.ReLU())
        self.decoder = nn.Sequential(
            nn.ConvTranspose2d(32, 16, 5, stride=2, padding=2, output_padding=1, bias=False),
            nn.ReLU(),
            nn.ConvTranspose2d(16, 1, 5, stride=2, padding=2, output_padding=1, bias=False))

    def forward(self, x):
        return self.decoder(self.encoder(x))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", required=True)
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--batch-size", type=int, default=50)
    parser.add_argument("--noise", type=float, default=0.3)
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--threads", type=int, default=1, help="0: PyTorch's default")
    parser.add_argument("--compile", action="store_true",
                        help="torch.compile the DDP model, Adam(fused=True)")
    args = parser.parse_args()

    rank = int(os.environ.get("OMPI_COMM_WORLD_RANK", "0"))
    world = int(os.environ.get("OMPI_COMM_WORLD_SIZE", "1"))
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", "29517")
    dist.init_process_group("gloo", rank=rank, world_size=world)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    torch.manual_seed(1234)

    with h5py.File(args.data, "r") as f:
        images = f["/train/images"]
        total = images.shape[0]
        base, extra = divmod(total, world)
        first = rank * base + min(rank, extra)
        count = base + (1 if rank < extra else 0)
        shard = torch.from_numpy(images[first:first + count])  # uint8, only this rank's rows

    model = DistributedDataParallel(ConvDae())
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr, fused=args.compile)
    if args.compile:  # compiled during the warm-up steps, which are not timed
        model = torch.compile(model)
    generator = torch.Generator().manual_seed(1234 + rank)
    order = torch.randperm(count, generator=generator)
    position = 0

    start = None
    for step in range(args.steps):
        if step == args.warmup:
            dist.barrier()
            start = time.perf_counter()
        if position + args.batch_size > count:
            order = torch.randperm(count, generator=generator)
            position = 0
        index = order[position:position + args.batch_size]
        position += args.batch_size
        clean = shard[index].unsqueeze(1).float().div_(255)
        noisy = clean + args.noise * torch.randn(clean.shape, generator=generator)
        optimizer.zero_grad(set_to_none=True)
        loss = nn.functional.mse_loss(model(noisy), clean)
        loss.backward()
        optimizer.step()
    dist.barrier()
    elapsed = time.perf_counter() - start

    rss_mb = torch.tensor([resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0])
    dist.all_reduce(rss_mb, op=dist.ReduceOp.MAX)
    if rank == 0:
        measured = args.steps - args.warmup
        print(json.dumps({
            "world_size": world,
            "samples_per_s": measured * args.batch_size * world / elapsed,
            "peak_rss_mb": rss_mb.item(),
            "final_loss": loss.item(),
            "threads": torch.get_num_threads(),
            "compiled": args.compile,
        }))
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
