"""The server-side SVG charts: one bar per point stacked by series, every
number in the table, a description that sums them, nothing unescaped."""

from datetime import datetime, timedelta

from app.console import charts
from app.services.insight import Overview, Totals


def test_bars_stack_and_the_table_holds_every_number():
    chart = charts.stacked_bars(
        "c",
        "Hits <and> misses",
        ["01 Jan", "02 Jan", "03 Jan"],
        [charts.Series("Hits", [3, 0, 5]), charts.Series("Misses", [1, 0, 0])],
        bucket="day",
    )
    assert chart.count("<rect") == 3  # zero values draw nothing
    assert "Hits &lt;and&gt; misses" in chart and "<and>" not in chart
    assert '<tr><th scope="row">01 Jan</th><td>3</td><td>1</td></tr>' in chart
    assert '<tr><th scope="row">02 Jan</th><td>0</td><td>0</td></tr>' in chart
    assert "3 days from 01 Jan to 03 Jan; Hits: 8 in total, Misses: 1 in total." in chart
    assert "<title>03 Jan: Hits 5; Misses 0</title>" in chart
    # The axis tops out at a round figure at or above the tallest bar (5), halved once.
    assert 'fill="#57606a">5</text>' in chart and 'fill="#57606a">2.5</text>' in chart


def test_an_empty_chart_says_so():
    chart = charts.stacked_bars("c", "Nothing", [], [charts.Series("Hits", [])], bucket="hour")
    assert "No data in this range." in chart and "<rect" not in chart


def test_time_saved_is_charted_in_the_unit_its_largest_point_reads_best_in():
    start = datetime(2026, 1, 1)

    def overview(saved_ms: int) -> Overview:
        series = [Totals(start + timedelta(hours=i), remote_saved_ms=saved_ms * i) for i in range(3)]
        return Overview(
            "24h", start, start, "hour", series[0], series, None, None, 0, 0, None, 0, None, 0, {}
        )

    for saved_ms, title in (
        (2_000_000, "Time saved (hours)"),
        (40_000, "Time saved (minutes)"),
        (10, "Time saved (seconds)"),
    ):
        assert title in str(charts.overview_charts(overview(saved_ms))[1])
