"""One thread cap for every library (issue 14, item 4): its default and that it holds."""

from __future__ import annotations

import pytest
import torch
from threadpoolctl import threadpool_info

from scenefusion.config import ConfigError, load_config, with_overrides
from scenefusion.cpu import _cgroup_quota, limit_threads, thread_budget, usable_cores
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
