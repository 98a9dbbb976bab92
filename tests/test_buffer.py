"""ReplayBuffer: windows never cross episodes, persistence, damaged files, capacity, validation."""
from __future__ import annotations

import numpy as np
import pytest

from dreamer_lib.buffer import ReplayBuffer, validate_episode

SEQ_LEN = 8


def tagged_episode(episode_id: int, rows: int, action_size: int = 2) -> dict[str, np.ndarray]:
    """An episode whose every row says where it came from: reward = id * 1000 + step, the first
    pixel holds (id, step, 7), the action (id, step) / 1000 (a valid action lies in [-1, 1])."""
    steps = np.arange(rows)
    image = np.zeros((rows, 64, 64, 3), np.uint8)
    image[:, 0, 0, 0] = episode_id
    image[:, 0, 0, 1] = steps
    image[:, 0, 0, 2] = 7
    action = np.zeros((rows, action_size), np.float32)
    action[:, 0], action[:, 1] = episode_id / 1000, steps / 1000
    not_terminal = np.ones(rows, np.float32)
    not_terminal[-1] = 0.0
    return {"image": image, "action": action, "reward": (episode_id * 1000 + steps).astype(np.float32),
            "not_terminal": not_terminal}


def random_lengths(count: int, seed: int = 0) -> list[int]:
    rng = np.random.default_rng(seed)
    lengths = rng.integers(2, 30, size=count).tolist()
    lengths[:3] = [SEQ_LEN - 1, SEQ_LEN, 1]  # just too short, exactly long enough, reset row only
    return lengths


def check_windows(batch: dict, lengths: dict[int, int], seq_len: int, batch_size: int) -> set[int]:
    """Every window is seq_len consecutive rows of one episode at least seq_len long."""
    assert batch["image"].shape == (seq_len, batch_size, 64, 64, 3) and batch["image"].dtype == np.uint8
    assert batch["action"].shape == (seq_len, batch_size, 2) and batch["action"].dtype == np.float32
    assert batch["reward"].shape == (seq_len, batch_size) and batch["reward"].dtype == np.float32
    assert batch["not_terminal"].shape == (seq_len, batch_size) and batch["not_terminal"].dtype == np.float32
    seen = set()
    for b in range(batch_size):
        reward = batch["reward"][:, b].astype(np.int64)
        ids, steps = reward // 1000, reward % 1000
        episode_id = int(ids[0])
        seen.add(episode_id)
        assert np.all(ids == episode_id), f"window {b} mixes episodes {sorted(set(ids))}"
        assert np.array_equal(steps, np.arange(steps[0], steps[0] + seq_len)), f"window {b} steps {steps}"
        assert lengths[episode_id] >= seq_len
        assert steps[-1] < lengths[episode_id]  # does not run past the episode's end
        # every array of the row comes from the same step
        assert np.all(batch["image"][:, b, 0, 0, 0] == episode_id)
        assert np.array_equal(batch["image"][:, b, 0, 0, 1], steps)
        assert np.all(np.round(batch["action"][:, b, 0] * 1000) == episode_id)
        assert np.array_equal(np.round(batch["action"][:, b, 1] * 1000), steps)
        # only the last row of an episode is terminal
        assert np.array_equal(batch["not_terminal"][:, b] == 0, steps == lengths[episode_id] - 1)
    return seen


def test_windows_come_from_one_episode_with_consecutive_steps():
    lengths = dict(enumerate(random_lengths(60)))
    buffer = ReplayBuffer(capacity=10**6, seed=3)
    for episode_id, rows in lengths.items():
        buffer.add_episode(tagged_episode(episode_id, rows))
    long_enough = {i for i, n in lengths.items() if n >= SEQ_LEN}
    seen, starts_at_zero, ends_at_last = set(), 0, 0
    for _ in range(200):
        batch = buffer.sample(16, SEQ_LEN)
        seen |= check_windows(batch, lengths, SEQ_LEN, 16)
        steps = batch["reward"].astype(np.int64) % 1000
        starts_at_zero += int(np.sum(steps[0] == 0))
        ends_at_last += int(np.sum(batch["not_terminal"][-1] == 0))
    assert seen == long_enough  # every long-enough episode gets sampled, no short one ever
    assert 1 in seen  # the episode of exactly seq_len rows
    assert starts_at_zero > 0 and ends_at_last > 0  # both ends of episodes are reachable


def test_sample_with_no_long_enough_episode_says_so():
    buffer = ReplayBuffer()
    buffer.add_episode(tagged_episode(0, 5))
    with pytest.raises(ValueError, match=r"No stored episode has 8 steps.*longest: 5"):
        buffer.sample(2, 8)


def test_episodes_persist_and_reload(tmp_path):
    lengths = random_lengths(12, seed=1)
    first = ReplayBuffer(tmp_path / "episodes")
    for episode_id, rows in enumerate(lengths):
        first.add_episode(tagged_episode(episode_id, rows))
    files = sorted((tmp_path / "episodes").glob("*.npz"))
    assert len(files) == len(lengths)
    assert not list((tmp_path / "episodes").glob("*.tmp.npz"))

    second = ReplayBuffer(tmp_path / "episodes")
    assert second.load() == len(lengths)
    assert len(second) == len(lengths)
    assert second.agent_steps == first.agent_steps == sum(n - 1 for n in lengths)
    assert second.total_episodes == len(lengths)
    for original, loaded in zip(first.episodes, second.episodes):  # same episodes, same order
        assert set(loaded) == set(original)
        for key in original:
            assert loaded[key].dtype == original[key].dtype
            np.testing.assert_array_equal(loaded[key], original[key])
    # and reloading does not write them again
    assert sorted((tmp_path / "episodes").glob("*.npz")) == files


def test_damaged_episode_file_is_skipped_with_a_warning(tmp_path):
    directory = tmp_path / "episodes"
    first = ReplayBuffer(directory)
    for episode_id in range(4):
        first.add_episode(tagged_episode(episode_id, 10))
    (directory / "000004-9.npz").write_bytes(b"this is not a zip file \x00\xff" * 10)
    np.savez_compressed(directory / "000005-9.npz", image=np.zeros((10, 64, 64, 3), np.uint8))  # lacks keys
    truncated = directory / "000006-9.npz"
    truncated.write_bytes(next(directory.glob("000000-*.npz")).read_bytes()[:200])  # cut mid-write

    second = ReplayBuffer(directory)
    with pytest.warns(UserWarning, match="Skipping episode file") as record:
        assert second.load() == 4
    damaged = {"000004-9.npz", "000005-9.npz", "000006-9.npz"}
    assert {name for name in damaged if any(name in str(w.message) for w in record)} == damaged
    assert [int(e["reward"][0]) // 1000 for e in second.episodes] == [0, 1, 2, 3]
    assert second.agent_steps == 4 * 9


def test_new_episode_never_overwrites_a_stored_one_after_a_file_is_deleted(tmp_path):
    directory = tmp_path / "episodes"
    first = ReplayBuffer(directory)
    for episode_id in range(4):
        first.add_episode(tagged_episode(episode_id, 10))
    next(directory.glob("000001-*.npz")).unlink()  # e.g. it was damaged and the user deleted it
    second = ReplayBuffer(directory)
    second.load()
    second.add_episode(tagged_episode(9, 10))
    third = ReplayBuffer(directory)
    third.load()
    assert sorted(int(e["reward"][0]) // 1000 for e in third.episodes) == [0, 2, 3, 9]


def test_capacity_evicts_oldest_but_counts_everything():
    buffer = ReplayBuffer(capacity=100, seed=0)
    lengths = [30, 25, 40, 12, 33, 30, 9, 28]
    for episode_id, rows in enumerate(lengths):
        buffer.add_episode(tagged_episode(episode_id, rows))
        assert buffer.stored_steps <= 100
        assert buffer.stored_steps == sum(len(e["image"]) for e in buffer.episodes)
        # the newest episodes are the ones kept, in order
        kept = [int(e["reward"][0]) // 1000 for e in buffer.episodes]
        assert kept == list(range(episode_id - len(kept) + 1, episode_id + 1))
        # nothing more was evicted than needed: one more old episode would not have fit
        if kept[0] > 0:
            assert buffer.stored_steps + lengths[kept[0] - 1] > 100
    assert buffer.agent_steps == sum(n - 1 for n in lengths)
    assert buffer.total_episodes == len(lengths)
    kept = {int(e["reward"][0]) // 1000 for e in buffer.episodes}
    for _ in range(20):
        ids = set((buffer.sample(8, SEQ_LEN)["reward"].astype(np.int64) // 1000).ravel().tolist())
        assert ids <= kept


def test_validate_episode_names_the_problem():
    good = tagged_episode(0, 6)
    assert validate_episode(good) == 6

    wrong_dtype = {**good, "image": good["image"].astype(np.float32)}
    with pytest.raises(ValueError, match=r"image.*uint8.*float32"):
        validate_episode(wrong_dtype)

    wrong_layout = {**good, "image": np.zeros((6, 3, 64, 64), np.uint8)}
    with pytest.raises(ValueError, match=r"image.*\(6, 3, 64, 64\)"):
        validate_episode(wrong_layout)

    short_reward = {**good, "reward": good["reward"][:-1]}
    with pytest.raises(ValueError, match=r"'reward'\] has 5 rows but episode\['image'\] has 6"):
        validate_episode(short_reward)

    long_action = {**good, "action": np.zeros((7, 2), np.float32)}
    with pytest.raises(ValueError, match=r"'action'\] has 7 rows"):
        validate_episode(long_action)

    missing = {k: v for k, v in good.items() if k != "not_terminal"}
    with pytest.raises(ValueError, match=r"lacks \['not_terminal'\]"):
        validate_episode(missing)

    buffer = ReplayBuffer()
    with pytest.raises(ValueError):
        buffer.add_episode(short_reward)
    assert len(buffer) == 0 and buffer.agent_steps == 0
