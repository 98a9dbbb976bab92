"""What each setting costs per update: the `cpu` preset's update timed alternately against
variants of it, in one process on the same random batch, so that a loaded or throttled machine
shifts every case alike (print ratios, compare only within one run).

    python benchmarks/update_cost.py --threads 2
"""
import argparse
import pathlib
import platform
import statistics

import torch

from dreamer_lib.config import make_config
from dreamer_lib.course.costs import update_times

CASES = {"cpu": {}, "plain path (--no-fast: NCHW layout)": dict(fast=False),
         "imagine_every=1 (the paper's)": dict(imagine_every=1), "imagine_every=2": dict(imagine_every=2),
         "slow critic + return norm.": dict(slow_critic_decay=0.98, return_normalization=True),
         "kl_balance=0.8": dict(kl_balance=0.8),
         "V2 world model (32x32 discrete, kl_balance)": dict(latent_classes=32, stoch_size=32, kl_balance=0.8),
         "V2 + V3 (lesson 8's all together)": dict(latent_classes=32, stoch_size=32, kl_balance=0.8,
                                                   free_nats_per_state=True, free_nats=1.0, slow_critic_decay=0.98,
                                                   return_normalization=True, actor_entropy=3e-4)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    configs = {name: make_config("cpu", device="cpu", **changes) for name, changes in CASES.items()}
    times = update_times(configs, args.rounds, warmup=1)
    cpuinfo = pathlib.Path("/proc/cpuinfo")
    cpu = next((line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines()
                if line.startswith("model name")), "") if cpuinfo.exists() else platform.processor()
    print(f"update_cost.py | {cpu} | {torch.backends.cpu.get_cpu_capability()} | {args.threads} threads | "
          f"{args.rounds} rounds")
    base = statistics.median(times["cpu"])
    for name, values in times.items():
        median = statistics.median(values)
        print(f"{name:44s} median {median * 1000:6.0f} ms/update   ratio {median / base:.2f}")


if __name__ == "__main__":
    main()
