"""The result schema (arena/core/results.py): a Result flattened for the store and back."""

from arena.core.results import Result, flat_row, from_flat_row


def test_a_flattened_result_comes_back_whole_with_nan_as_none():
    r = Result(run_id="r", config="eager", status="ok", ttft_ms=float("nan"), token_ids=[1, 2],
               spread={"ttft_ms": [1.0]}, synthetic=True)
    back = from_flat_row(flat_row(r))
    assert back.token_ids == [1, 2] and back.spread == {"ttft_ms": [1.0]} and back.synthetic is True
    assert back.ttft_ms is None
