"""Update throughput: time one full DreamerV1 update (world model, actor, critic, three Adam
steps) on a random batch (dreamer_lib.buffer.random_batch), for the fast path and the plain eager
fp32 path, in the same run.

    python benchmarks/throughput.py --preset paper --device cuda
    python benchmarks/throughput.py --preset cpu --device cpu --precision fp32 --threads 2
    python benchmarks/throughput.py --preset cpu --device cpu --precision fp32 --cnn-depth 8   # any Config flag

Prints device, ms/update, updates/s, peak memory and the time of the first (compiling) updates;
the last line is `ratio fast/plain: X.XX` (speed-up of the fast path).
"""
from __future__ import annotations

import argparse
import datetime
import os
import platform
import time

import torch
import tyro

from dreamer_lib.agent import DreamerV1
from dreamer_lib.config import Config, make_config, resolve_device
from dreamer_lib.fast import cpu_has_bf16


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def measure(config, device: torch.device, warmup: int, repeats: int, action_size: int = 6, batch=None) -> dict:
    """Time agent.update on `batch`, by default dreamer_lib.buffer.random_batch of the config's size.
    (Imported here, not above: cost_to_learn.py times older dreamer_libs, which lack it, and
    passes its own batch.)"""
    torch.manual_seed(0)
    agent = DreamerV1(config, action_size, device)
    if batch is None:
        from dreamer_lib.buffer import random_batch

        batch = random_batch(config.batch_size, config.seq_len, action_size)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    for _ in range(warmup):
        agent.update(batch)
    sync(device)
    warmup_s = time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(repeats):
        agent.update(batch)
    sync(device)
    seconds = (time.perf_counter() - start) / repeats
    peak = f"{torch.cuda.max_memory_allocated() / 2**30:.2f} GiB" if device.type == "cuda" else "n/a on cpu"
    return {"ms": seconds * 1000, "per_s": 1 / seconds, "warmup_s": warmup_s, "peak_gib": peak,
            "precision": str(agent.precision).replace("torch.", "")}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--preset", default="paper", choices=["paper", "cpu", "ci"])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--warmup", type=int, default=None, help="untimed updates first (default 3 cpu, 20 cuda)")
    parser.add_argument("--repeats", type=int, default=None, help="timed updates (default 10 cpu, 50 cuda)")
    parser.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"],
                        help="the fast path's precision (auto: bf16 where the hardware has bf16 units)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    args, settings = parser.parse_known_args(argv)  # the rest: Config flags, as dreamer-train takes them
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    warmup = args.warmup or (20 if device.type == "cuda" else 3)
    repeats = args.repeats or (50 if device.type == "cuda" else 10)
    name = (torch.cuda.get_device_name() if device.type == "cuda" else
            f"{platform.processor() or platform.machine()} CPU, {torch.backends.cpu.get_cpu_capability()}, "
            f"bf16 units: {'yes' if cpu_has_bf16() else 'no'}")
    print(f"throughput.py {datetime.date.today()} | device {device} ({name}) | {os.cpu_count()} cores, "
          f"{torch.get_num_threads()} threads | torch {torch.__version__}")
    base = tyro.cli(Config, default=make_config(args.preset, device=device.type, precision=args.precision),
                    args=settings, prog="throughput.py")
    print(f"preset {args.preset} {' '.join(settings)}: batch {base.batch_size} x {base.seq_len}, depth {base.cnn_depth}, "
          f"dense {base.dense_units}, deter {base.deter_size}, horizon {base.horizon}; {warmup} warm-up + {repeats} timed updates")
    results = {}
    for label, config in (("fast", base.replace(fast=True)), ("plain", base.replace(fast=False, compile="off"))):
        r = measure(config, device, warmup, repeats)
        results[label] = r
        print(f"{label:>5}: {r['ms']:8.1f} ms/update  {r['per_s']:7.2f} updates/s  precision {r['precision']:>8}  "
              f"peak {r['peak_gib']}  first {warmup} updates (incl. compile) {r['warmup_s']:.1f} s")
    print(f"ratio fast/plain: {results['plain']['ms'] / results['fast']['ms']:.2f}")


if __name__ == "__main__":
    main()
