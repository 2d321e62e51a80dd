import pytest
import torch

from imaging.errors import ModelError
from models.training.loss import VOLUME_SMOOTH, masked_loss, soft_dice


def _onehot(labels: torch.Tensor, k: int = 4) -> torch.Tensor:
    return torch.nn.functional.one_hot(labels, k).permute(0, 4, 1, 2, 3).float()


def test_confident_right_prediction_beats_wrong_one():
    gen = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 4, (1, 6, 6, 6), generator=gen)
    target = _onehot(labels)
    right = masked_loss(target * 20, target, ["full"])
    wrong = masked_loss(target.roll(1, dims=1) * 20, target, ["full"])
    assert right < 0.05 < wrong


def test_cord_annotation_supervises_only_the_region_marginal():
    target = torch.zeros(1, 4, 4, 4, 4)
    target[:, 0, :2] = 1
    target[:, 1, 2:] = 1          # the real mask: cord region = second half
    as_cord = torch.zeros(1, 4, 4, 4, 4)
    as_cord[:, 0, :2] = 10
    as_cord[:, 1, 2:] = 10
    as_graft = as_cord.clone()
    as_graft[:, [1, 3]] = as_graft[:, [3, 1]]   # same region, called graft instead of cord
    a = masked_loss(as_cord, target, ["cord"])
    b = masked_loss(as_graft, target, ["cord"])
    assert a == pytest.approx(float(b), abs=1e-6)
    assert masked_loss(as_graft, target, ["full"]) > a + 0.5


def test_healthy_annotation_penalises_a_lesion_inside_a_real_cord():
    target = torch.zeros(1, 4, 4, 4, 4)
    target[:, 0, :2] = 1
    target[:, 1, 2:] = 1          # a healthy real cord: the mask is cord, lesion 0 is known
    as_cord = torch.zeros(1, 4, 4, 4, 4)
    as_cord[:, 0, :2] = 10
    as_cord[:, 1, 2:] = 10
    as_lesion = as_cord.clone()
    as_lesion[:, [1, 2]] = as_lesion[:, [2, 1]]   # same region, called lesion
    cord_only = masked_loss(as_lesion, target, ["cord"])
    healthy = masked_loss(as_lesion, target, ["healthy"])
    assert float(masked_loss(as_cord, target, ["healthy"])) < 0.05
    assert float(cord_only) < 0.05 < 1.0 < float(healthy)


def test_soft_dice_of_empty_label_is_one_and_mismatch_is_refused():
    empty = torch.zeros(1, 3, 3, 3)
    assert float(soft_dice(empty, empty)[0]) == pytest.approx(1.0)
    with pytest.raises(ModelError, match="annotation 'bones'"):
        masked_loss(torch.zeros(1, 2, 2, 2, 2), torch.zeros(1, 2, 2, 2, 2), ["bones"])
    with pytest.raises(ModelError, match="differ"):
        masked_loss(torch.zeros(1, 2, 2, 2, 2), torch.zeros(1, 3, 2, 2, 2), ["full"])


def test_graft_volume_term_penalises_a_wrong_graft_volume_only_when_weighted():
    target = torch.zeros(1, 4, 6, 6, 6)
    target[:, 1] = 1.0
    target[:, 1, 2:4, 2:4, 2:4] = 0.7
    target[:, 3, 2:4, 2:4, 2:4] = 0.3                 # a partial-volume graft of 2.4 voxels
    logits = torch.zeros(1, 4, 6, 6, 6)
    logits[:, 1] = 20.0                                 # no graft predicted at all
    plain = masked_loss(logits, target, ["full"])
    weighted = masked_loss(logits, target, ["full"], volume_weight=1.0)
    expected = 2.4 / (2.4 + VOLUME_SMOOTH)              # |0 - 2.4| / (0 + 2.4 + smooth), nearly
    assert float(weighted - plain) == pytest.approx(expected, rel=0.02)
    cord_only = masked_loss(logits, target, ["cord"], volume_weight=1.0)
    assert float(cord_only) == pytest.approx(float(masked_loss(logits, target, ["cord"])))


def test_graft_volume_term_is_bounded_for_a_diffuse_false_graft():
    target = torch.zeros(1, 4, 8, 8, 8)
    target[:, 1] = 1.0                                  # no graft in the patch
    diffuse = torch.zeros(1, 4, 8, 8, 8)                # every label equally likely
    plain = masked_loss(diffuse, target, ["full"])
    weighted = masked_loss(diffuse, target, ["full"], volume_weight=1.0)
    assert 0.8 < float(weighted - plain) <= 1.0


def test_graft_loss_rewards_the_right_graft_and_counts_cord_only_scans_as_negatives():
    from models.training.loss import graft_loss
    target = torch.zeros(2, 4, 6, 6, 6)
    target[:, 1] = 1.0
    target[0, 1, 2:4, 2:4, 2:4], target[0, 3, 2:4, 2:4, 2:4] = 0.0, 1.0   # sample 0: a graft
    graft = target[:, 3]
    right = torch.stack([-(graft * 20 - 10), graft * 20 - 10], dim=1)
    everywhere = torch.stack([torch.full_like(graft, -10), torch.full_like(graft, 10)], dim=1)
    assert graft_loss(right, target, 0.5) < 0.05 < graft_loss(everywhere, target, 0.5)
    # a false graft in the graft-free sample costs more than none
    false_graft = right.clone()
    false_graft[1, :, :3] = torch.tensor([-10.0, 10.0])[:, None, None, None]
    assert graft_loss(false_graft, target, 0.5) > graft_loss(right, target, 0.5) + 0.2
    with pytest.raises(ModelError, match=r"expected \(N, 2, ...\)"):
        graft_loss(torch.zeros(1, 4, 2, 2, 2), torch.zeros(1, 4, 2, 2, 2))
