"""Tests of dsnet.engine.losses against independent (numpy) computations."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import dsnet
from dsnet.engine import (
    CITYSCAPES_CLASS_WEIGHTS,
    CrossEntropy,
    DSNetLoss,
    LossOutput,
    OhemCrossEntropy,
    check_labels,
)

from .tolerances import sum_rel

IGNORE = 255


def _batch(n=2, c=5, h=6, w=7, scale=3.0, ignore_frac=0.2, dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    logits = (torch.randn(n, c, h, w, generator=g) * scale).to(dtype)
    target = torch.randint(0, c, (n, h, w), generator=g)
    target[torch.rand(n, h, w, generator=g) < ignore_frac] = IGNORE
    return logits, target


def _ohem_numpy(logits, target, thresh, min_kept, weight=None, ignore=IGNORE):
    """Direct per-pixel loop of the authors' OHEM: returns (loss, selection mask over N x H x W)."""
    x = logits.detach().double().numpy()
    t = target.numpy()
    n, c, h, w = x.shape
    losses, probs, where = [], [], []
    for b in range(n):
        for i in range(h):
            for j in range(w):
                y = int(t[b, i, j])
                if y == ignore:
                    continue
                z = x[b, :, i, j]
                m = z.max()
                logp = z[y] - (m + math.log(np.exp(z - m).sum()))
                wt = 1.0 if weight is None else float(weight[y])
                losses.append(-wt * logp)
                probs.append(math.exp(logp))
                where.append((b, i, j))
    probs_arr = np.array(probs)
    sorted_probs = np.sort(probs_arr)
    k = min(min_kept, len(probs) - 1)
    threshold = max(sorted_probs[k], thresh)
    keep = probs_arr < threshold
    mask = np.zeros(t.shape, dtype=bool)
    for flag, pos in zip(keep, where):
        mask[pos] = flag
    return float(np.array(losses)[keep].mean()), mask


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize(
    "thresh,min_kept",
    [(0.9, 0), (0.9, 5), (0.9, 40), (0.9, 1000), (0.5, 10), (0.3, 3), (0.7, 67), (0.99, 20)],
)
def test_ohem_matches_direct_computation(thresh, min_kept, weighted) -> None:
    logits, target = _batch()
    n_valid = int((target != IGNORE).sum())
    assert 0 < n_valid < 1000  # min_kept=1000 exercises min_kept > n_valid
    weight = torch.rand(5, generator=torch.Generator().manual_seed(1)) + 0.5 if weighted else None
    expected, _ = _ohem_numpy(logits, target, thresh, min_kept, None if weight is None else weight.numpy())
    loss = OhemCrossEntropy(thresh=thresh, min_kept=min_kept, ignore_index=IGNORE, weight=weight)(logits, target)
    assert loss.dtype == torch.float64
    assert loss.item() == pytest.approx(expected, rel=1e-10, abs=1e-12)


def test_ohem_float32_and_cityscapes_weights() -> None:
    logits, target = _batch(n=2, c=19, h=8, w=8, dtype=torch.float32, seed=3)
    weight = torch.tensor(CITYSCAPES_CLASS_WEIGHTS)
    expected, _ = _ohem_numpy(logits, target, 0.9, 30, weight.numpy())
    loss = OhemCrossEntropy(0.9, 30, IGNORE, weight)(logits, target)
    assert loss.dtype == torch.float32
    # float32: a log-softmax over 19 classes, then a weighted mean over at most 2 x 8 x 8 pixels (float64 reference)
    assert loss.item() == pytest.approx(expected, rel=sum_rel(19 + 2 * 8 * 8))


def test_ohem_plain_mean_is_not_weight_normalised() -> None:
    logits, target = _batch(ignore_frac=0.0)
    weight = torch.full((5,), 2.0, dtype=torch.float64)
    unweighted = OhemCrossEntropy(0.9, 10)(logits, target)
    weighted = OhemCrossEntropy(0.9, 10, weight=weight)(logits, target)
    assert weighted.item() == pytest.approx(2.0 * unweighted.item(), rel=1e-12)


def test_ohem_gradient_finite_and_only_on_selected_pixels() -> None:
    logits, target = _batch()
    logits.requires_grad_(True)
    loss = OhemCrossEntropy(0.7, 12)(logits, target)
    loss.backward()
    assert torch.isfinite(logits.grad).all()
    _, mask = _ohem_numpy(logits, target, 0.7, 12)
    touched = (logits.grad.abs().sum(dim=1) > 0).numpy()
    assert touched.any()
    np.testing.assert_array_equal(touched, mask)


def test_ohem_selection_has_no_graph() -> None:
    logits, target = _batch()
    logits.requires_grad_(True)
    sel = OhemCrossEntropy(0.9, 10).select(logits, target)
    assert sel.dtype == torch.bool and not sel.requires_grad


def test_ohem_empty_selection_falls_back_to_hardest_pixels() -> None:
    # All logits equal: every GT probability is exactly 1/5 = 0.2 = the k-th value > thresh, so the
    # strict "< threshold" keeps nothing (the reference returns NaN); we keep the pixels "<= threshold".
    logits = torch.zeros(2, 5, 4, 4, dtype=torch.float64, requires_grad=True)
    target = torch.randint(0, 5, (2, 4, 4))
    target[0, 0] = IGNORE
    loss = OhemCrossEntropy(thresh=0.1, min_kept=3)(logits, target)
    assert loss.item() == pytest.approx(math.log(5.0), rel=1e-12)
    loss.backward()
    assert torch.isfinite(logits.grad).all()
    # min_kept=0 and every pixel confident: the hardest pixel is kept.
    confident = F.one_hot(target.clamp(max=4), 5).permute(0, 3, 1, 2).double() * 20.0
    loss0 = OhemCrossEntropy(thresh=0.5, min_kept=0)(confident, target)
    assert torch.isfinite(loss0) and loss0.item() >= 0.0


@pytest.mark.parametrize(
    "criterion",
    [OhemCrossEntropy(), OhemCrossEntropy(weight=torch.rand(5)), CrossEntropy(), CrossEntropy(torch.rand(5))],
)
def test_all_ignored_batch_gives_connected_zero(criterion) -> None:
    logits = torch.randn(2, 5, 4, 4, requires_grad=True)
    target = torch.full((2, 4, 4), IGNORE)
    loss = criterion(logits, target)
    assert loss.item() == 0.0 and torch.isfinite(loss)
    assert loss.requires_grad
    loss.backward()
    assert torch.equal(logits.grad, torch.zeros_like(logits))


def test_dsnet_loss_all_ignored() -> None:
    outs = [torch.randn(2, 5, 4, 4, requires_grad=True) for _ in range(3)]
    target = torch.full((2, 4, 4), IGNORE)
    for ohem in (True, False):
        res = DSNetLoss(5, class_weights=[1.0, 2, 3, 4, 5], ohem=ohem)(dsnet.DSNetOutput(*outs), target)
        assert res.total.item() == 0.0
        res.total.backward()
        for o in outs:
            assert torch.isfinite(o.grad).all() and not o.grad.any()


@pytest.mark.parametrize("weighted", [False, True])
def test_cross_entropy_matches_torch(weighted) -> None:
    logits, target = _batch()
    weight = torch.rand(5, dtype=torch.float64) + 0.5 if weighted else None
    ours = CrossEntropy(weight, IGNORE)(logits, target)
    ref = nn.CrossEntropyLoss(weight=weight, ignore_index=IGNORE)(logits, target)
    assert ours.item() == pytest.approx(ref.item(), rel=1e-12)


@pytest.mark.parametrize("weighted", [False, True])
def test_label_smoothing_matches_torch_and_spreads_the_target(weighted) -> None:
    logits, target = _batch()
    weight = torch.rand(5, dtype=torch.float64) + 0.5 if weighted else None
    ours = CrossEntropy(weight, IGNORE, label_smoothing=0.2)(logits, target)
    ref = nn.CrossEntropyLoss(weight=weight, ignore_index=IGNORE, label_smoothing=0.2)(logits, target)
    assert ours.item() == pytest.approx(ref.item(), rel=1e-12)
    assert ours.item() != pytest.approx(CrossEntropy(weight, IGNORE)(logits, target).item(), rel=1e-3)


def test_ohem_with_label_smoothing_selects_the_same_pixels_and_smooths_their_loss() -> None:
    logits, target = _batch(seed=3)
    weight = torch.rand(5, dtype=torch.float64) + 0.5
    plain = OhemCrossEntropy(0.7, 10, IGNORE, weight)
    smooth = OhemCrossEntropy(0.7, 10, IGNORE, weight, label_smoothing=0.1)
    mask = smooth.select(logits, target)
    assert torch.equal(mask, plain.select(logits, target))
    logp = F.log_softmax(logits, dim=1)
    safe = torch.where(target == IGNORE, 0, target)
    nll = -weight[safe] * logp.gather(1, safe[:, None])[:, 0]
    uniform = -(logp * weight[None, :, None, None]).sum(1) / logits.shape[1]
    expected = (0.9 * nll + 0.1 * uniform)[mask].mean()
    assert smooth(logits, target).item() == pytest.approx(expected.item(), rel=1e-12)
    with pytest.raises(ValueError, match="label_smoothing"):
        DSNetLoss(5, label_smoothing=1.0)


def test_label_edges_mark_both_sides_of_a_class_change_and_ignore_makes_none() -> None:
    from dsnet.engine.losses import label_edges

    target = torch.zeros(1, 6, 8, dtype=torch.long)
    target[:, :, 4:] = 1
    target[:, 0, :] = IGNORE
    edges = label_edges(target, 1)
    assert edges[0, 1:, 3:5].all() and not edges[0, 1:, :3].any() and not edges[0, 1:, 5:].any()
    assert not edges[0, 0].any()  # ignored pixels are never edges, nor do they make edges below them
    assert label_edges(target, 2)[0, 1:, 2:6].all()
    assert not label_edges(torch.full((1, 4, 4), 3), 2).any()


@pytest.mark.parametrize("ohem", [True, False])
def test_boundary_weight_scales_the_main_term_near_edges_only(ohem) -> None:
    logits, target = _batch(n=1, h=8, w=8, ignore_frac=0.0, seed=4)
    target[:] = 0
    target[:, :, 4:] = 1
    plain = DSNetLoss(5, ohem=ohem, ohem_min_kept=1000)
    edged = DSNetLoss(5, ohem=ohem, ohem_min_kept=1000, boundary_weight=2.0, boundary_width=1)
    aux = [logits.clone(), logits.clone()]
    a, b = plain([logits, *aux], target), edged([logits, *aux], target)
    assert torch.equal(a.aux_p, b.aux_p)  # the aux terms are untouched
    pixel = F.cross_entropy(logits, target, reduction="none")
    w = torch.ones_like(pixel)
    w[:, :, 3:5] = 3.0
    selected = plain.main_loss.select(logits, target) if ohem else torch.ones_like(target, dtype=torch.bool)
    expected = (pixel * w)[selected].mean() if ohem else (pixel * w).sum() / w.sum()
    assert b.main.item() == pytest.approx(expected.item(), rel=1e-9)
    assert b.main.item() != pytest.approx(a.main.item(), rel=1e-3)
    with pytest.raises(ValueError, match="boundary_weight"):
        DSNetLoss(5, boundary_weight=-1.0)


def test_logits_resized_to_label_size() -> None:
    logits, _ = _batch(h=4, w=5)
    target = torch.randint(0, 5, (2, 8, 10))
    up = F.interpolate(logits, size=(8, 10), mode="bilinear", align_corners=False)
    assert OhemCrossEntropy(0.9, 20)(logits, target).item() == pytest.approx(
        OhemCrossEntropy(0.9, 20)(up, target).item(), rel=1e-12
    )
    assert CrossEntropy()(logits, target).item() == pytest.approx(CrossEntropy()(up, target).item(), rel=1e-12)


def test_half_logits_and_uint8_labels() -> None:
    logits, target = _batch(dtype=torch.float32, ignore_frac=0.0)
    loss = OhemCrossEntropy(0.9, 10)(logits.half(), target.to(torch.uint8))
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
    with pytest.raises(TypeError):
        OhemCrossEntropy()(logits, target.float())


def _three_outputs(seed=0):
    g = torch.Generator().manual_seed(seed)
    outs = [torch.randn(2, 5, 6, 7, generator=g, dtype=torch.float64) * 2 for _ in range(3)]
    target = torch.randint(0, 5, (2, 6, 7), generator=g)
    target[0, :2] = IGNORE
    return outs, target


def test_dsnet_loss_default_weighting() -> None:
    outs, target = _three_outputs()
    cw = torch.tensor([0.8, 0.9, 1.0, 1.1, 1.2])
    loss_fn = DSNetLoss(5, class_weights=cw, ohem_min_kept=20)
    res = loss_fn(dsnet.DSNetOutput(*outs), target)
    assert isinstance(res, LossOutput)
    main = OhemCrossEntropy(0.9, 20, IGNORE, cw)(outs[0], target)
    ce = nn.CrossEntropyLoss(weight=cw.double(), ignore_index=IGNORE)
    aux_p, aux_d = ce(outs[1], target), ce(outs[2], target)
    assert res.total.item() == pytest.approx((0.6 * main + 0.2 * aux_p + 0.2 * aux_d).item(), rel=1e-12)
    assert res.main.item() == pytest.approx(main.item(), rel=1e-12)
    assert res.aux_p.item() == pytest.approx(aux_p.item(), rel=1e-12)
    assert res.aux_d.item() == pytest.approx(aux_d.item(), rel=1e-12)
    assert not res.main.requires_grad
    assert set(res.as_floats()) == {"total", "main", "aux_p", "aux_d"}
    # A plain tuple in (main, aux_p, aux_d) order gives the same result.
    assert res.total.item() == loss_fn(tuple(outs), target).total.item()


def test_dsnet_loss_configurable_weights_and_plain_ce() -> None:
    outs, target = _three_outputs(1)
    outs = [o.requires_grad_(True) for o in outs]
    res = DSNetLoss(5, ohem=False, loss_weights=(1.0, 0.5, 0.0))(outs, target)
    ce = nn.CrossEntropyLoss(ignore_index=IGNORE)
    expected = ce(outs[0], target) + 0.5 * ce(outs[1], target)
    assert res.total.item() == pytest.approx(expected.item(), rel=1e-12)
    res.total.backward()
    assert outs[0].grad.abs().sum() > 0 and outs[1].grad.abs().sum() > 0
    assert not outs[2].grad.any()  # weight 0, still in the graph
    with pytest.raises(ValueError):
        DSNetLoss(5, loss_weights=(1.0, 0.5))


def test_dsnet_loss_single_tensor_is_main_term() -> None:
    outs, target = _three_outputs(2)
    res = DSNetLoss(5, ohem_min_kept=10)(outs[0], target)
    expected = OhemCrossEntropy(0.9, 10)(outs[0], target)
    assert res.total.item() == pytest.approx(expected.item(), rel=1e-12)
    assert res.aux_p is None and res.aux_d is None
    assert set(res.as_floats()) == {"total", "main"}


def test_dsnet_loss_rejects_bad_labels() -> None:
    outs, target = _three_outputs()
    loss_fn = DSNetLoss(5)
    bad = target.clone()
    bad[0, 0, 0] = 7
    bad[1, 0, 0] = -1
    with pytest.raises(ValueError, match=r"-1, 7"):
        loss_fn(outs, bad)
    with pytest.raises(ValueError, match="channels"):
        DSNetLoss(6)(outs, target)
    with pytest.raises(ValueError, match="class_weights"):
        DSNetLoss(5, class_weights=CITYSCAPES_CLASS_WEIGHTS)
    check_labels(target, 5, IGNORE)  # valid labels pass
    check_labels(torch.full((1, 2, 2), IGNORE), 5, IGNORE)


def test_cityscapes_class_weights() -> None:
    assert len(CITYSCAPES_CLASS_WEIGHTS) == 19
    assert CITYSCAPES_CLASS_WEIGHTS[0] == 0.8373 and CITYSCAPES_CLASS_WEIGHTS[-1] == 1.0507


def test_weights_follow_module_device_and_are_not_persistent() -> None:
    loss_fn = DSNetLoss(19, class_weights=CITYSCAPES_CLASS_WEIGHTS)
    assert dict(loss_fn.state_dict()) == {}
    assert loss_fn.main_loss.weight.shape == (19,)


def test_dsnet_loss_with_real_model_backward() -> None:
    model = dsnet.create_model("dsnet_head64", num_classes=4).train()
    x = torch.randn(2, 3, 32, 32)
    target = torch.randint(0, 4, (2, 32, 32))
    target[:, :4] = IGNORE
    out = model(x)
    res = DSNetLoss(4, ohem_min_kept=256)(out, target)
    res.total.backward()
    assert torch.isfinite(res.total)
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
