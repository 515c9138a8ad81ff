from __future__ import annotations

from mvit_lab.plots.parallel import _get_parallel_info, _render_parallel


def _rec(depths, mask, top1, gflops=0.5):
    return dict(status="finished", val_top1=top1, gflops=gflops, run_id=f"r{top1}",
                model=dict(depths=depths, mask_unit_attn=mask, pool_mode="max"))


RECORDS = [_rec([1, 2, 11, 2], [True, True, False, False], 90.0),
           _rec([2, 3, 16, 3], None, 91.0), _rec([1, 2, 7, 2], [True, False], 92.0)]


def test_list_levels_get_short_labels():
    """``[1, 2, 11, 2]``-style labels ran into the neighbouring axes."""
    info = _get_parallel_info(RECORDS, ["depths", "mask_unit_attn", "pool_mode"],
                              ["val_top1"])
    depths, mask, pool, _ = info["dimensions"]
    assert depths["ticks"] == ["1,2,11,2", "1,2,7,2", "2,3,16,3"]
    assert sorted(mask["ticks"]) == ["T,F", "T,T,F,F", "null"]
    assert pool["ticks"] == ["max"]
    # each line sits at its own level's tick
    assert [depths["ticks"][v] for v in depths["values"]] == ["1,2,11,2", "2,3,16,3", "1,2,7,2"]


def test_one_colour_value_gets_a_range_around_it():
    """Equal GFLOPs gave a colour bar from about -1 to +1."""
    info = _get_parallel_info(RECORDS, ["depths"], ["val_top1", "gflops"], color="gflops")
    assert info["color_range"] == (0.475, 0.525)
    line = _render_parallel(info).data[0].line
    assert (line.cmin, line.cmax) == (0.475, 0.525)
    spread = _get_parallel_info(RECORDS, ["depths"], ["val_top1"], color="val_top1")
    assert spread["color_range"] == (90.0, 92.0)
