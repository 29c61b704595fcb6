"""Tests of dsnet.engine.metrics (confusion matrix, IoU conventions, distributed reduction)."""

from __future__ import annotations

import io
import json
import math
import socket

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from dsnet.engine import ConfusionMatrix, SegMetrics, format_table

IGNORE = 255


def _random_labels(seed, n=3, c=6, h=9, w=11, ignore_frac=0.15):
    g = torch.Generator().manual_seed(seed)
    target = torch.randint(0, c, (n, h, w), generator=g)
    target[torch.rand(n, h, w, generator=g) < ignore_frac] = IGNORE
    pred = torch.randint(0, c, (n, h, w), generator=g)
    return pred, target


def _brute_force(pred, target, c):
    cm = np.zeros((c, c), dtype=np.int64)
    for p, t in zip(pred.flatten().tolist(), target.flatten().tolist()):
        if t != IGNORE:
            cm[t, p] += 1
    return cm


def test_confusion_matrix_equals_brute_force_count() -> None:
    cm = ConfusionMatrix(6)
    expected = np.zeros((6, 6), dtype=np.int64)
    for seed in range(3):
        pred, target = _random_labels(seed)
        cm.update(pred, target)
        expected += _brute_force(pred, target, 6)
    assert cm.matrix.dtype == torch.int64
    np.testing.assert_array_equal(cm.matrix.numpy(), expected)
    m = cm.compute()
    assert m.num_pixels == int(expected.sum())
    assert m.pixel_accuracy == pytest.approx(np.trace(expected) / expected.sum())


def test_logits_input_uses_argmax() -> None:
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 4, 5, 5, generator=g)
    target = torch.randint(0, 4, (2, 5, 5), generator=g)
    a, b = ConfusionMatrix(4), ConfusionMatrix(4)
    a.update(logits, target)
    b.update(logits.argmax(1), target)
    assert torch.equal(a.matrix, b.matrix)


def _hand_made() -> ConfusionMatrix:
    # 3 classes; class 2 occurs neither in the GT nor in the prediction. The ignore pixel is excluded
    # (its prediction, 2, would otherwise make class 2 "present").
    target = torch.tensor([[0, 0, 1, 1, IGNORE]])
    pred = torch.tensor([[0, 1, 1, 1, 2]])
    cm = ConfusionMatrix(3)
    cm.update(pred, target)
    return cm


def test_iou_conventions_with_absent_class() -> None:
    cm = _hand_made()
    np.testing.assert_array_equal(cm.matrix.numpy(), [[1, 1, 0], [0, 2, 0], [0, 0, 0]])
    m = cm.compute()
    assert isinstance(m, SegMetrics)
    assert m.iou.dtype == np.float64
    assert m.iou[0] == pytest.approx(1 / 2) and m.iou[1] == pytest.approx(2 / 3) and math.isnan(m.iou[2])
    assert m.miou == pytest.approx((1 / 2 + 2 / 3) / 2)  # nan-mean skips class 2
    assert m.miou_reference == pytest.approx((1 / 2 + 2 / 3 + 0) / 3)  # reference counts it as 0
    assert m.num_pixels == 4
    assert m.pixel_accuracy == pytest.approx(3 / 4)
    assert m.per_class_accuracy[0] == pytest.approx(1 / 2) and m.per_class_accuracy[1] == 1.0
    assert math.isnan(m.per_class_accuracy[2])
    assert m.mean_accuracy == pytest.approx(3 / 4)


def test_class_only_in_prediction_has_zero_iou() -> None:
    cm = ConfusionMatrix(3)
    cm.update(torch.tensor([[0, 2]]), torch.tensor([[0, 0]]))
    m = cm.compute()
    assert m.iou[2] == 0.0 and math.isnan(m.iou[1])
    assert math.isnan(m.per_class_accuracy[2])
    assert m.miou == pytest.approx((0.5 + 0.0) / 2)
    assert m.miou_reference == pytest.approx(0.5 / 3)


def test_ignore_pixels_excluded() -> None:
    pred, target = _random_labels(5)
    all_ignored = torch.full_like(target, IGNORE)
    cm = ConfusionMatrix(6)
    cm.update(pred, all_ignored)
    assert cm.matrix.sum() == 0
    m = cm.compute()
    assert m.num_pixels == 0 and math.isnan(m.pixel_accuracy) and math.isnan(m.miou) and m.miou_reference == 0.0
    cm.update(pred, target)
    assert cm.matrix.sum() == int((target != IGNORE).sum())


def test_custom_ignore_index() -> None:
    cm = ConfusionMatrix(2, ignore_index=-1)
    cm.update(torch.tensor([[1, 0, 1]]), torch.tensor([[1, -1, 0]]))
    np.testing.assert_array_equal(cm.matrix.numpy(), [[0, 1], [0, 1]])


def test_update_validation_errors() -> None:
    cm = ConfusionMatrix(4)
    with pytest.raises(ValueError, match="shape"):
        cm.update(torch.zeros(2, 5, 5, dtype=torch.long), torch.zeros(2, 5, 4, dtype=torch.long))
    with pytest.raises(ValueError, match="shape"):
        cm.update(torch.zeros(2, 3, 5, 5), torch.zeros(2, 5, 5, dtype=torch.long))  # 3 != 4 channels
    with pytest.raises(ValueError, match="target values"):
        cm.update(torch.zeros(1, 2, dtype=torch.long), torch.tensor([[1, 4]]))
    with pytest.raises(ValueError, match="target values"):
        cm.update(torch.zeros(1, 2, dtype=torch.long), torch.tensor([[-1, 0]]))
    with pytest.raises(ValueError, match="prediction values"):
        cm.update(torch.tensor([[0, 9]]), torch.tensor([[0, 1]]))
    with pytest.raises(ValueError):
        cm.update(torch.zeros(1, 2), torch.tensor([[0, 1]]))  # float label map
    assert cm.matrix.sum() == 0  # failed updates add nothing


def test_merge_equals_single_accumulation() -> None:
    single, a, b = ConfusionMatrix(6), ConfusionMatrix(6), ConfusionMatrix(6)
    for seed in range(4):
        pred, target = _random_labels(seed)
        single.update(pred, target)
        (a if seed % 2 else b).update(pred, target)
    assert a.merge(b) is a
    assert torch.equal(a.matrix, single.matrix)
    with pytest.raises(ValueError):
        a.merge(ConfusionMatrix(5))


def test_reset_and_state_dict_round_trip() -> None:
    cm = ConfusionMatrix(6)
    pred, target = _random_labels(7)
    cm.update(pred, target)
    buf = io.BytesIO()
    torch.save(cm.state_dict(), buf)
    buf.seek(0)
    restored = ConfusionMatrix(6)
    restored.load_state_dict(torch.load(buf, weights_only=True))
    assert torch.equal(restored.matrix, cm.matrix)
    restored.update(pred, target)
    cm.update(pred, target)
    assert torch.equal(restored.matrix, cm.matrix)
    with pytest.raises(ValueError):
        ConfusionMatrix(5).load_state_dict(cm.state_dict())
    cm.reset()
    assert cm.matrix.sum() == 0


def test_to_dict_is_json_serialisable() -> None:
    d = _hand_made().compute().to_dict()
    text = json.dumps(d, allow_nan=False)
    back = json.loads(text)
    assert back["iou"][2] is None and back["per_class_accuracy"][2] is None
    assert back["miou"] == pytest.approx((1 / 2 + 2 / 3) / 2)
    assert back["num_pixels"] == 4


def test_format_table() -> None:
    m = _hand_made().compute()
    table = format_table(m, ["road", "sidewalk", "building"])
    lines = table.splitlines()
    assert lines[0].split() == ["class", "IoU", "%", "Acc", "%"]
    assert "road" in table and "50.00" in table and "66.67" in table
    assert any(line.startswith("building") and "-" in line for line in lines)
    assert "mIoU (present classes, 2/3): 58.33" in table
    assert "mIoU (reference, all 3 classes): 38.89" in table
    assert "class_0" in format_table(m, None)
    with pytest.raises(ValueError):
        format_table(m, ["a"])


def test_all_reduce_without_process_group_is_noop() -> None:
    cm = _hand_made()
    before = cm.matrix.clone()
    assert cm.all_reduce() is cm
    assert torch.equal(cm.matrix, before)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _all_reduce_worker(rank: int, world_size: int, port: int, out_dir: str) -> None:
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world_size)
    try:
        cm = ConfusionMatrix(6)
        pred, target = _random_labels(100 + rank)
        cm.update(pred, target)
        cm.all_reduce()
        torch.save(cm.matrix, f"{out_dir}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


@pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(), reason="gloo not available")
def test_all_reduce_two_processes_gloo(tmp_path) -> None:
    mp.spawn(_all_reduce_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    expected = ConfusionMatrix(6)
    for rank in range(2):
        expected.update(*_random_labels(100 + rank))
    for rank in range(2):
        got = torch.load(tmp_path / f"rank{rank}.pt", weights_only=True)
        assert torch.equal(got, expected.matrix)  # summed, not averaged
