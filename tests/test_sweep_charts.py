"""Sweep charts show each point's spread over its repeats and say where it is larger than the
effect; the Sweep tab writes each chart's CSV once per page, not once per streamed update."""

import statistics

import pytest

from arena.sweep.charts import noisy_points, speedup_charts
from arena.ui.web.sweep_tab import _noise_warning


def _point(cfg: str, batch: int, repeats_ms: list[float]) -> dict:
    return dict(mode="sweep-forward", model_id="synthetic:tiny-llama", model_display="tiny", hardware="CPU",
                config=cfg, baseline="eager", status="ok", dtype="fp32", batch_size=batch, prompt_tokens=64,
                padding=0.0, latency_ms=statistics.median(repeats_ms), run_id="r", settings={"quant": "none"},
                spread={"latency_ms": repeats_ms})


def _sweep(rows):
    points = []
    for batch, eager_ms, sdpa_ms in rows:
        eager, sdpa = _point("eager", batch, eager_ms), _point("sdpa", batch, sdpa_ms)
        eager["speedup"], sdpa["speedup"] = 1.0, eager["latency_ms"] / sdpa["latency_ms"]
        points += [eager, sdpa]
    return points


def test_each_speedup_has_its_spread_and_a_warning_where_the_spread_is_larger_than_the_effect():
    # batch 2: eager's repeats range 20-110 ms (unstable: far past 10% of the mean), so its "2.16x"
    # is drawn grey, off the line; batch 4: steady repeats (under 10%) whose range still covers 1x
    points = _sweep([(1, [20, 21, 22], [10, 11, 12]), (2, [20, 108, 110], [8.5, 50, 52]),
                     (4, [20, 21, 22], [19, 20, 21.5])])
    [chart] = speedup_charts(points)
    sdpa = chart.data[chart.data["config"] == "sdpa"].set_index("batch_size")
    assert sdpa.loc[2, "speedup_low"] == pytest.approx(20 / 52)
    assert sdpa.loc[2, "speedup_high"] == pytest.approx(110 / 8.5)
    assert list(sdpa["unstable"]) == [False, True, False]
    assert list(sdpa["noisy"]) == [False, True, True]
    assert not chart.data[chart.data["config"] == "eager"]["noisy"].any()  # the baseline is 1x by definition
    trace = next(t for t in chart.figure.data if t.name == "sdpa")
    assert list(trace.x) == [1, 4]  # the unstable point is not on the line
    kept = sdpa.loc[[1, 4]]
    assert list(trace.error_y.array) == pytest.approx(list(kept["speedup_high"] - kept["speedup"]))
    assert list(trace.error_y.arrayminus) == pytest.approx(list(kept["speedup"] - kept["speedup_low"]))
    assert list(trace.marker.symbol) == ["circle", "circle-open"]
    off = next(t for t in chart.figure.data if t.name == "sdpa: unstable, off the line")
    assert list(off.x) == [2] and off.marker.color == "#b0b0b0"
    assert "larger than the effect" in chart.figure.layout.annotations[-1].text
    assert "sdpa at batch 4" in chart.figure.layout.annotations[-1].text
    header = chart.csv().splitlines()[0].split(",")
    assert {"latency_ms_low", "latency_ms_high", "speedup_low", "speedup_high", "noisy", "unstable"} <= set(header)
    assert noisy_points([chart]) == 2
    assert "2 points vary more over their repeats" in _noise_warning(points)
    # steady repeats: no warning anywhere
    steady = _sweep([(1, [20, 21, 22], [10, 11, 12]), (2, [40, 41, 42], [20, 21, 21.5])])
    assert noisy_points(speedup_charts(steady)) == 0 and _noise_warning(steady) == ""
    assert not speedup_charts(steady)[0].figure.layout.annotations[1:]


def test_the_sweep_tab_writes_each_charts_csv_once(tmp_path):
    """The Sweep tab's handlers, taken from the built page (real Blocks, real store, real workers)."""
    from arena.core.limits import ServerLimits
    from arena.data.store import Store
    from arena.ui.web.app import build
    from arena.ui.web.state import ArenaApp

    app = ArenaApp(Store(tmp_path / "arena.sqlite"), ServerLimits())
    demo = build(app)
    fns = {getattr(f.fn, "__name__", ""): f.fn for f in demo.fns.values()}
    updates = list(fns["run_sweep_ui"]("page1", "synthetic:tiny-llama", ["eager", "sdpa"], ["none"], "1,2,4",
                                       "8,16", "0", "forward", "auto", 2, "16..64", 4))
    assert updates[-1][0].startswith("**Finished**: 12 points")
    # the page draws the chart on each change of the points (never on a skip), as the page does
    shown = [u[2] for u in updates if "points" in u[2]]
    drawn = [fns["drawn"](points, None, "page1") for points in shown]
    assert sum(1 for d in drawn if d[2] is not None) == 1  # the CSV once the points are final; streamed: none
    files = sorted(p.name for p in app.downloads.root.iterdir())
    assert len(files) == 1 and files[0].startswith("page1-speedup-"), files  # the chart shown, once
    points, titles = shown[-1], drawn[-1][0]["choices"]
    assert len(titles) > 2
    for title in titles[:3]:  # the visitor picks charts; picking one again overwrites
        fns["pick"](points, title, "page1")
    fns["pick"](points, titles[0], "page1")
    assert len(list(app.downloads.root.iterdir())) == 3
