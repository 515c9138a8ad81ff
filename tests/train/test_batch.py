from __future__ import annotations

import torch

from mvit_lab.experiment import TrainConfig
from mvit_lab.train._shared import seed_everything
from mvit_lab.train.batch import BatchPrep

CPU = torch.device("cpu")
MEAN, STD = (0.4, 0.5, 0.6), (0.2, 0.25, 0.3)


def _norm(x, dim):
    shape = [1] * x.ndim
    shape[dim] = 3
    return (x.float() / 255 - torch.tensor(MEAN).reshape(shape)) / torch.tensor(STD).reshape(shape)


def test_uint8_is_normalised_per_channel_for_images_clips_and_views():
    prep = BatchPrep(MEAN, STD, CPU)
    gen = torch.Generator().manual_seed(0)
    for shape, channel in [((2, 3, 8, 8), 1), ((2, 3, 4, 8, 8), 1), ((2, 5, 3, 4, 8, 8), 2)]:
        x = torch.randint(0, 256, shape, dtype=torch.uint8, generator=gen)
        torch.testing.assert_close(prep.inputs(x), _norm(x, channel))


def test_repeated_views_are_flattened_into_the_batch():
    prep = BatchPrep(MEAN, STD, CPU, repeated=2)
    x = torch.randint(0, 256, (3, 2, 3, 8, 8), dtype=torch.uint8)
    out, y = prep.train(x, torch.tensor([4, 5, 6]))
    assert out.shape == (6, 3, 8, 8) and y.tolist() == [4, 4, 5, 5, 6, 6]
    torch.testing.assert_close(out[1], _norm(x[0, 1], 0))


def test_cutmix_on_clips_cuts_one_box_through_every_frame():
    cfg = TrainConfig(mixup=0.0, cutmix=1.0, mixup_switch_prob=0.0, label_smoothing=0.1)
    prep = BatchPrep(MEAN, STD, CPU, cfg, num_classes=4)
    seed_everything(0)
    x = torch.randint(0, 256, (4, 3, 5, 16, 16), dtype=torch.uint8)
    clean = prep.inputs(x)
    mixed, y = prep.train(x, torch.tensor([0, 1, 2, 3]))
    assert mixed.shape == clean.shape and y.shape == (4, 4)
    torch.testing.assert_close(y.sum(-1), torch.ones(4))
    changed = (mixed != clean).any(dim=1)  # [B, T, H, W]
    assert changed.any()
    for t in range(1, 5):
        assert torch.equal(changed[:, t], changed[:, 0])  # the same box in every frame


def test_random_erasing_erases_one_box_per_clip():
    cfg = TrainConfig(random_erasing=1.0)
    prep = BatchPrep(MEAN, STD, CPU, cfg, num_classes=4)
    seed_everything(1)
    x = torch.randint(0, 256, (2, 3, 4, 16, 16), dtype=torch.uint8)
    erased, y = prep.train(x, torch.tensor([0, 1]))
    assert y.tolist() == [0, 1]  # hard labels without mixup
    changed = (erased != prep.inputs(x)).any(dim=1)
    assert changed.any()
    for t in range(1, 4):
        assert torch.equal(changed[:, t], changed[:, 0])


def test_soft_targets_use_soft_cross_entropy():
    prep = BatchPrep(MEAN, STD, CPU, TrainConfig(label_smoothing=0.0))
    logits = torch.randn(3, 4)
    hard = torch.tensor([1, 0, 3])
    soft = torch.nn.functional.one_hot(hard, 4).float()
    torch.testing.assert_close(prep.loss(logits, soft), prep.loss(logits, hard))
