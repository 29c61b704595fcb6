"""Share of atrous kernel taps on padding: the issue's figures, a brute-force count, a whole DSNet."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from dsnet.analysis import TABLE1_SCHEDULES, atrous_padding, padding_share, parse_schedule, schedule_padding
from dsnet.errors import ConfigError
from dsnet.models import create_model


def brute_force(size: tuple[int, int], kernel: int, dilation: int, padding: int, stride: int) -> float:
    """Unfold a map of ones padded with zeros: every zero read is a tap on padding."""
    mask = torch.ones(1, 1, *size, dtype=torch.float64)
    taps = F.unfold(mask, kernel, dilation=dilation, padding=padding, stride=stride)
    return float((taps == 0).double().mean())


def test_the_issue_figures() -> None:
    conv = nn.Conv2d(8, 8, 3, padding=5, dilation=5)
    assert round(100 * atrous_padding(conv, (28, 28)), 1) == 22.4
    assert round(100 * atrous_padding(conv, (128, 256)), 1) == 3.9


@pytest.mark.parametrize(
    "size,kernel,dilation,padding,stride",
    [
        ((28, 28), 3, 5, 5, 1),
        ((28, 28), 3, 15, 15, 1),
        ((13, 40), 3, 2, 2, 2),
        ((9, 9), 5, 1, 0, 1),
        ((7, 11), 3, 3, 1, 2),
    ],
)
def test_against_brute_force(size: tuple[int, int], kernel: int, dilation: int, padding: int, stride: int) -> None:
    expected = brute_force(size, kernel, dilation, padding, stride)
    assert padding_share(size, kernel, dilation, padding, stride) == pytest.approx(expected, abs=1e-12)
    conv = nn.Conv2d(1, 1, kernel, stride=stride, padding=padding, dilation=dilation)
    assert atrous_padding(conv, size) == pytest.approx(expected, abs=1e-12)


def test_dsnet_rows_and_the_table1_schedule() -> None:
    rows = atrous_padding(create_model("dsnet_head64"), (224, 224))
    # context branch d2 x6, d3 x6, d5 x4 (the boxed DSNet schedule of Table 1), then SPASPP's 6/12/18/24
    rates = [r.dilation[0] for r in rows]
    assert rates == [2] * 6 + [3] * 6 + [5] * 4 + [6, 12, 18, 24]
    assert {r.map_size for r in rows} == {(28, 28)}  # all at 1/8 resolution
    assert [r.branch for r in rows] == ["context"] * 16 + ["decoder"] * 4
    context = [r.share for r in rows if r.branch == "context"]
    assert schedule_padding(TABLE1_SCHEDULES["DSNet"], (224, 224)) == pytest.approx(sum(context) / len(context))
    assert parse_schedule(TABLE1_SCHEDULES["DSNet"]) == tuple(rates[:16])
    # the "atrous disaster": rate 15 puts far more taps on padding at 224 than at 1024x2048
    d15 = schedule_padding("d15x1", (224, 224))
    assert d15 == pytest.approx(brute_force((28, 28), 3, 15, 15, 1)) and d15 > 0.5
    assert schedule_padding("d15", (1024, 2048)) < 0.12
    dense = atrous_padding(create_model("dsnet_head64"), (224, 224), include_dense=True)
    assert len(dense) > len(rows) and all(r.kernel[0] > 1 for r in dense)


def test_bad_schedules_and_sizes() -> None:
    with pytest.raises(ConfigError, match="'dXx2'"):
        parse_schedule("d2x3+dXx2")
    with pytest.raises(ConfigError, match="two positive integers"):
        padding_share((0, 5), 3, 1)
    with pytest.raises(ConfigError, match="no output"):
        padding_share((3, 3), 3, 5, 0)
