"""One thread cap for every library: its default and that it holds."""

from __future__ import annotations

import pytest
import torch
from threadpoolctl import threadpool_info

from scenefusion.config import ConfigError, load_config, with_overrides
from scenefusion.cpu import (
    SMALL_WORK_CELLS,
    _cgroup_quota,
    limit_threads,
    thread_budget,
    threads_for_work,
    torch_threads,
    usable_cores,
)
from scenefusion.models.classical import HGBModel


@pytest.mark.parametrize("text, cores", [
    ("max 100000\n", None), ("150000 100000\n", 2), ("50000 100000", 1), ("garbage", None),
])
def test_a_container_cpu_quota_is_read_as_whole_cores(tmp_path, text, cores):
    path = tmp_path / "cpu.max"
    path.write_text(text)
    assert _cgroup_quota(path) == cores
    assert _cgroup_quota(tmp_path / "absent") is None


def test_the_cap_holds_for_torch_and_native_pools_and_is_undone_after():
    before = torch.get_num_threads()
    with limit_threads(1) as n:
        assert n == 1 and thread_budget() == 1
        assert torch.get_num_threads() == 1
        assert all(pool["num_threads"] == 1 for pool in threadpool_info())
    assert torch.get_num_threads() == before
    assert thread_budget() == usable_cores() >= 1


def test_gradient_boosting_sizes_its_pool_from_the_cap():
    big = HGBModel.small_input_cells
    with limit_threads(1):  # without the cap's budget it would take every core of the machine
        with HGBModel()._threads(big):
            assert {p["num_threads"] for p in threadpool_info()
                    if p["user_api"] == "openmp"} == {1}


def test_threads_is_a_validated_setting():
    assert with_overrides(load_config(None), threads=1).threads == 1
    with pytest.raises(ConfigError, match="threads"):
        with_overrides(load_config(None), threads=0)


def test_small_torch_work_runs_on_one_thread_and_large_work_on_the_budget():
    with limit_threads(2):
        assert threads_for_work(SMALL_WORK_CELLS - 1) == 1
        assert threads_for_work(SMALL_WORK_CELLS) == 2
    before = torch.get_num_threads()
    with torch_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before


def test_an_lstm_trains_single_threaded_on_small_batches(monkeypatch):
    """An LSTM batch is a few thousand values: its training asks torch for one thread (two
    threads on a busy 2-core machine made such a fit 30-200x slower), and the process-wide
    setting is restored afterwards."""
    import numpy as np

    from scenefusion.models import dense
    from scenefusion.models.base import make_model

    seen: list[int] = []
    real = dense.train_network

    def spy(*args, **kwargs):
        seen.append(torch.get_num_threads())
        return real(*args, **kwargs)

    monkeypatch.setattr(dense, "train_network", spy)
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(40, 8, 13)).astype(np.float32), np.arange(40) % 2
    before = torch.get_num_threads()
    with limit_threads(2):
        make_model("lstm", max_epochs=2).fit(X, y)
    assert seen == [1] and torch.get_num_threads() == before


def test_image_decode_workers_follow_the_run_cap():
    from scenefusion.features.extract import default_decode_workers

    with limit_threads(1):  # one thread: decode in the main process, no worker processes
        assert default_decode_workers() == 0
    assert default_decode_workers() == (min(2, usable_cores()) if usable_cores() > 1 else 0)
