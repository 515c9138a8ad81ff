from __future__ import annotations

import pytest

from mvit_lab.search.tables import (
    ablation_table,
    compare_ladders,
    format_ablation,
    format_compare,
    format_ladder,
    ladder_table,
    mean_ci,
)


def _rec(pool, kernel, seed, top1, status="finished", **kw):
    return dict(status=status, model=dict(pool_mode=pool, pool_kernel=kernel), seed=seed,
                val_top1=top1, **kw)


RECORDS = [
    _rec("max", "stride", 0, 90.0), _rec("max", "stride", 1, 92.0),
    _rec("conv", "stride", 0, 95.0), _rec("conv", "stride", 1, 97.0),
    _rec("conv", [3, 3, 3], 0, 99.0), _rec("max", [3, 3, 3], 0, 91.0),
    _rec("avg", "stride", 0, 50.0, status="failed"),  # never counted
    _rec("avg", "stride", 1, 10.0, truncated=True),
]


def test_mean_ci_matches_hand_computed_values():
    mean, std, ci = mean_ci([90.0, 92.0])
    assert (mean, std) == (91.0, pytest.approx(1.41421356))
    assert ci == pytest.approx(12.706 * 1.41421356 / 2 ** 0.5)  # t(0.975, 1 dof) * s / sqrt(n)
    assert mean_ci([3.0]) == (3.0, 0.0, 0.0)


def test_ablation_by_level_with_baseline_difference():
    rows = ablation_table(RECORDS, "pool_mode")
    assert [(r["level"], r["n"]) for r in rows] == [("max", 3), ("conv", 3)]
    assert rows[0]["mean"] == pytest.approx(91.0) and rows[0]["baseline"]
    assert rows[1]["mean"] == pytest.approx(97.0) and rows[1]["diff"] == pytest.approx(6.0)
    kernels = ablation_table(RECORDS, "pool_kernel", baseline=[3, 3, 3])
    assert [r["level"] for r in kernels] == ["stride", [3, 3, 3]]
    assert kernels[0]["diff"] == pytest.approx(93.5 - 95.0)
    text = format_ablation(rows)
    assert "| max | 91.00 ± " in text and "| baseline |" in text and "| +6.00 |" in text
    with pytest.raises(ValueError, match="baseline: pool_mode='avg' has no finished trials"):
        ablation_table(RECORDS, "pool_mode", baseline="avg")


def test_ladder_table_speedup_and_format():
    records = [dict(status="finished", ladder_step="0", point="mvitv2", seed=s, val_top1=v,
                    gflops=2.0, throughput=100.0) for s, v in ((0, 90.0), (1, 92.0))]
    records += [dict(status="finished", ladder_step="1", point="hiera", seed=0, val_top1=89.0,
                     gflops=1.5, throughput=250.0),
                dict(status="pruned", ladder_step="1", point="hiera", seed=1)]
    rows = ladder_table(records)
    assert [(r["name"], r["seeds"]) for r in rows] == [("mvitv2", 2), ("hiera", 1)]
    assert rows[1]["speedup"] == pytest.approx(2.5)
    assert "| hiera | 89.00 (n = 1) | 1.500 | 250.0 | 2.50x |" in format_ladder(rows)


def test_ladders_side_by_side():
    def rec(step, name, seed, top1):
        return dict(status="finished", ladder_step=str(step), point=name, seed=seed,
                    val_top1=top1, gflops=2.0 - step, throughput=100.0)

    scratch = ladder_table([rec(0, "mvitv2", 0, 90.0), rec(0, "mvitv2", 1, 92.0),
                            rec(1, "hiera", 0, 85.0), rec(1, "hiera", 1, 87.0)])
    mae = ladder_table([rec(0, "mvitv2", 0, 93.0), rec(1, "hiera", 0, 94.0)])
    rows = compare_ladders([("scratch", scratch), ("mae", mae)])
    assert [r["name"] for r in rows] == ["mvitv2", "hiera"]
    assert rows[0]["results"]["scratch"] == dict(mean=91.0, std=pytest.approx(2 ** 0.5),
                                                 seeds=2)
    assert rows[0]["delta"]["mae"] == pytest.approx(2.0)  # 93 - 91
    assert rows[1]["delta"]["mae"] == pytest.approx(8.0)  # 94 - 86
    text = format_compare(rows, ["scratch", "mae"])
    assert text.splitlines()[0] == ("| step | GFLOPs | val_top1 scratch | val_top1 mae | "
                                    "mae − scratch |")
    assert "| hiera | 1.000 | 86.00 ± 1.41 (2) | 94.00 (n = 1) | +8.00 |" in text
    # a step one ladder lacks (its trials failed) shows as missing, not as zero
    partial = compare_ladders([("scratch", scratch), ("mae", mae[1:])])
    assert "| mvitv2 | 2.000 | 91.00 ± 1.41 (2) | – | – |" in format_compare(
        partial, ["scratch", "mae"])
