"""Mutation check: do the tests notice a wrong line in the core math?

Applies each single-line mutation below to its file, one at a time, runs the tests, and always
writes the original file back (also on Ctrl-C or SIGTERM). A mutation is KILLED when the tests
fail, SURVIVED when they pass (a gap in the tests, or a change that is not behaviour), SKIPPED
when its original text is not in the file (the code was refactored: update the entry).

    python tools/mutation_check.py --list
    python tools/mutation_check.py                 # all, a few minutes
    python tools/mutation_check.py --only 3,7      # some, by number
    python tools/mutation_check.py --tests "tests/test_math.py tests/test_buffer.py"
    python tools/mutation_check.py --root /tmp/copy  # mutate a copy (while others edit the tree)
Stdlib only. Exit status 0 when nothing survived, 1 otherwise, 2 when the unmutated tests fail.
"""
from __future__ import annotations

import argparse
import os
import pathlib
import shlex
import signal
import subprocess
import sys
import time

DEFAULT_TESTS = "tests/test_behaviour.py tests/test_math.py tests/test_buffer.py tests/test_agent.py"
R, AC, AG, BU, EN = ("dreamer_lib/rssm.py", "dreamer_lib/actor_critic.py", "dreamer_lib/agent.py",
                     "dreamer_lib/buffer.py", "dreamer_lib/envs.py")
EVAL = "dreamer_lib/evaluate.py|dreamer_lib/train.py"  # "a|b": the first file that holds the text

# (file, exact original text, replacement, what the mutation breaks)
MUTATIONS = [
    (R, 'kl_divergence(posterior, prior).mean()', 'kl_divergence(prior, posterior).mean()',
     'KL direction swapped in kl_loss'),
    (R, 'var_ratio = (q.std / p.std).pow(2)', 'var_ratio = (p.std / q.std).pow(2)', 'KL variance ratio inverted'),
    (R, 'mean_term = ((q.mean - p.mean) / p.std)', 'mean_term = ((q.mean - p.mean) / q.std)',
     "KL mean term over q's std"),
    (R, 'return torch.clamp(kl, min=free_nats), kl',
     'return torch.clamp(kl_divergence(posterior, prior), min=free_nats).mean(), kl',
     'free nats clamped per element'),
    (R, 'std = F.softplus(std) + self.min_std', 'std = F.softplus(std)', 'RSSM min_std dropped'),
    (R, 'std = F.softplus(std) + self.min_std', 'std = F.softplus(std + self.min_std)', 'RSSM min_std inside softplus'),
    (R, 'torch.cat([prev_state.stoch, prev_action], -1)', 'torch.cat([prev_state.mean, prev_action], -1)',
     "prior fed z's mean, not the sample"),
    (R, 'deter = self.gru(x, prev_state.deter)', 'deter = self.gru(x, torch.zeros_like(prev_state.deter))',
     'GRU forgets h_{t-1}'),
    (R, 'return self.posterior(prior, embed), prior', 'return self.posterior(prev_state, embed), prior',
     "posterior uses h_{t-1}, not the prior's h_t"),
    (R, 'torch.cat([prior.deter, embed], -1)', 'torch.cat([prior.deter, torch.zeros_like(embed)], -1)',
     'posterior ignores the observation'),
    (R, 'self.obs_step(state, actions[t], embeds[t])', 'self.obs_step(state, actions[max(t - 1, 0)], embeds[t])',
     'embeds[t] paired with actions[t-1]'),
    (R, 'self.obs_step(state, actions[t], embeds[t])',
     'self.obs_step(state, actions[min(t + 1, len(actions) - 1)], embeds[t])',
     'embeds[t] paired with actions[t+1]'),
    (R, 'policies.append(actor(state.features.detach()))', 'policies.append(actor(state.features))',
     'actor input not detached in imagination'),
    (R, 'state, states, actions, policies = start, [], [], []', 'state, states, actions, policies = start, [start], [], []',
     'imagination output includes the start state'),
    (AC, 'inputs = rewards + discounts * (1 - lambda_) * next_values',
     'inputs = rewards + discounts * lambda_ * next_values',
     'lambda-return: (1 - lambda) -> lambda'),
    (AC, 'next_values = torch.cat([values[1:], bootstrap[None]], 0)', 'next_values = values',
     'lambda-return bootstraps with v_t, not v_{t+1}'),
    (AC, 'returns, last = [], bootstrap', 'returns, last = [], values[-1]',
     'lambda-return recursion starts at v_{H-1}'),
    (AC, 'shifted = torch.cat([torch.ones_like(discounts[:1]), discounts[:-1]], 0)', 'shifted = discounts',
     'discount weights not shifted'),
    (AC, 'return torch.cumprod(shifted, 0).detach()', 'return torch.cumprod(shifted, 0)',
     'discount weights not detached'),
    (AC, 'return -(discount_weights(discounts) * lambda_returns).mean()',
     'return (discount_weights(discounts) * lambda_returns).mean()',
     'actor loss minimises the return'),
    (AC, '(values - lambda_returns.detach())', '(values - lambda_returns)', 'critic target not detached'),
    (AC, 'mean = self.mean_scale * torch.tanh(mean / self.mean_scale)', 'mean = self.mean_scale * torch.tanh(mean)',
     'actor mean bound: tanh(m) not tanh(m / scale)'),
    (AC, 'std = F.softplus(std + self.raw_init_std) + self.min_std', 'std = F.softplus(std) + self.min_std',
     'actor init_std offset dropped'),
    (AC, 'std = F.softplus(std + self.raw_init_std) + self.min_std', 'std = F.softplus(std + self.raw_init_std)',
     'actor min_std dropped'),
    (AC, 'return torch.tanh(self.normal.rsample(sample_shape))',
     'return self.normal.rsample(sample_shape).clamp(-1, 1)',
     'action squashed by clipping, not tanh'),
    (AG, 'rewards * c.reward_scale', 'rewards', 'reward_scale not applied'),
    (AG, 'kl_loss(posterior, prior, c.free_nats)', 'kl_loss(prior, posterior, c.free_nats)', 'KL swapped at the call'),
    (AG, 'c.kl_scale * kl_clamped', 'c.kl_scale * kl', 'free nats ignored in the model loss'),
    (AG, 'c.gamma * not_terminal)', 'not_terminal)', 'continue target without gamma'),
    (AG, 'posterior.at(slice(0, -1)) if self.continue_predictor is not None else posterior', 'posterior',
     'continue head: last state of each window not dropped'),
    (AG, 'lambda_returns(reward[:-1], value[:-1], discount[:-1], value[-1]',
     'lambda_returns(reward[1:], value[1:], discount[1:], value[-1]',
     'imagined rewards/values off by one step'),
    (AG, 'lambda_returns(reward[:-1], value[:-1], discount[:-1], value[-1]',
     'lambda_returns(reward[:-1], value[:-1], discount[:-1], value[-2]',
     'bootstrap with v_{H-2}'),
    (AG, 'critic_loss(value[:-1], returns, discount[:-1])', 'critic_loss(value[1:], returns, discount[:-1])',
     'critic regresses v_{t+1} on R_t'),
    (AG, 'action = dist.mode()', 'action = dist.rsample()', 'evaluation samples instead of the mode'),
    (AG, 'retain_graph=True', 'retain_graph=group == "model"', 'graph freed after the actor (the critic shares it)'),
    (AG, 'entropy = TanhNormal.stack(policies[1:])', 'entropy = TanhNormal.stack(policies[:-1])',
     'entropy bonus at the start state and states 0..H-3'),
    (AG, 'self.config.expl_noise * torch.randn_like(action)', 'self.config.expl_noise ** 2 * torch.randn_like(action)',
     'exploration noise scale: variance for std'),
    (AG, 'self.rssm.obs_step(state, prev_action, embed)',
     'self.rssm.obs_step(state, torch.zeros_like(prev_action), embed)',
     'policy ignores the previous action'),
    (BU, 'rng.integers(len(episode["image"]) - seq_len + 1)', 'rng.integers(len(episode["image"]) - seq_len)',
     'window start range off by one'),
    (BU, 'if len(e["image"]) >= seq_len]', 'if len(e["image"]) > seq_len]', 'episodes exactly seq_len long skipped'),
    (BU, 'windows[key].append(episode[key][start:start + seq_len])',
     'windows[key].append(np.concatenate([e[key] for e in candidates])[start:start + seq_len])',
     'windows cut from all episodes concatenated'),
    (EN, 'action, state = policy(image, state)', 'action, _ = policy(image, state)',
     'policy state not carried in an episode'),
    (EN, '0.0 if terminated else 1.0', '0.0 if terminated or truncated else 1.0', 'time limit stored as terminal'),
    (EVAL, 'agent.policy(image, state, explore=False)', 'agent.policy(image, state, explore=True)',
     'evaluation explores'),
]


def locate(root: pathlib.Path, files: str, original: str):
    """(path, text) of the first candidate file holding `original` exactly once, or (None, why)."""
    for name in files.split("|"):
        path = root / name
        if path.exists():
            text = path.read_text()
            if text.count(original) == 1:
                return path, text
            if text.count(original) > 1:
                return None, f"text occurs {text.count(original)} times in {name}"
    return None, "text not found"


def run_tests(root: pathlib.Path, tests: str, timeout: float) -> tuple[bool, str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")]))}
    command = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *shlex.split(tests)]
    try:
        done = subprocess.run(command, cwd=root, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return False, "timeout"
    lines = [line for line in done.stdout.splitlines() if line.startswith(("FAILED", "ERROR"))]
    lines = lines or done.stdout.strip().splitlines()[-1:] or [""]  # the first failure, else the summary
    return done.returncode == 0, lines[0][:100]


def write(path: pathlib.Path, text: str) -> None:
    path.write_text(text)
    for cached in (path.parent / "__pycache__").glob(f"{path.stem}.*.pyc"):  # never run a stale .pyc
        cached.unlink(missing_ok=True)


def interrupt(signum, frame):
    raise KeyboardInterrupt


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--list", action="store_true", help="print the mutations and exit")
    parser.add_argument("--only", default=None, help="comma-separated mutation numbers (from --list)")
    parser.add_argument("--tests", default=DEFAULT_TESTS, help="pytest arguments (default: %(default)s)")
    parser.add_argument("--root", default=str(pathlib.Path(__file__).resolve().parents[1]), help="repository root")
    parser.add_argument("--timeout", type=float, default=600, help="seconds per test run")
    args = parser.parse_args(argv)
    root = pathlib.Path(args.root).resolve()
    chosen = [int(n) for n in args.only.split(",")] if args.only else range(1, len(MUTATIONS) + 1)
    if args.list:
        for n, (files, original, _, what) in enumerate(MUTATIONS, 1):
            path, _ = locate(root, files, original)
            print(f"{n:3d}  {files.split('|')[0] if path is None else path.relative_to(root)!s:28}  {what}"
                  f"{'' if path else '   (SKIPPED: not found)'}")
        return 0
    signal.signal(signal.SIGTERM, interrupt)  # so that `finally` restores the file on kill too
    ok, detail = run_tests(root, args.tests, args.timeout)
    if not ok:
        print(f"The unmutated tests fail ({detail}); fix them or choose others with --tests.")
        return 2
    rows = []
    for n in chosen:
        files, original, replacement, what = MUTATIONS[n - 1]
        path, text = locate(root, files, original)
        if path is None:
            rows.append((n, files.split("|")[0], what, "SKIPPED", text))
        else:
            start = time.time()
            try:
                write(path, text.replace(original, replacement))
                passed, detail = run_tests(root, args.tests, args.timeout)
            except KeyboardInterrupt:
                print(f"interrupted; {path.relative_to(root)} is restored")
                return 130
            finally:
                write(path, text)  # always put the original back
            detail = f"{time.time() - start:5.1f}s {detail}"
            rows.append((n, str(path.relative_to(root)), what, "SURVIVED" if passed else "KILLED", detail))
        print(f"{rows[-1][0]:3d}  {rows[-1][1]:28}  {rows[-1][2]:52}  {rows[-1][3]:8}  {rows[-1][4]}", flush=True)
    killed = sum(row[3] == "KILLED" for row in rows)
    survived = [row for row in rows if row[3] == "SURVIVED"]
    skipped = sum(row[3] == "SKIPPED" for row in rows)
    print(f"\nscore: {killed}/{killed + len(survived)} killed ({skipped} skipped)")
    for row in survived:
        print(f"  survived: {row[0]} {row[1]}: {row[2]}")
    return 1 if survived else 0


if __name__ == "__main__":
    sys.exit(main())
