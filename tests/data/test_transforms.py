from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.transforms.v2 import functional as TF

from mvit_lab.data.transforms import (
    Augment,
    VideoEval,
    VideoTrain,
    _rand_augment,
    image_transforms,
    pillow_safe,
)
from mvit_lab.train._shared import seed_everything

MEAN = (0.485, 0.456, 0.406)
RECIPE = Augment(crop_scale=(0.08, 1.0), hflip=0.5, rand_augment="rand-m9-n6-mstd0.5-inc1",
                 interpolation="bicubic", eval_crop_pct=0.875)


def _photo(h=375, w=500, seed=0):
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))


def test_image_train_is_uint8_random_and_seeded():
    tf = image_transforms(RECIPE, (32, 32), MEAN)
    img = _photo()
    seed_everything(0)
    a = [tf.train(img) for _ in range(4)]
    seed_everything(0)
    b = [tf.train(img) for _ in range(4)]
    assert all(x.dtype == torch.uint8 and x.shape == (3, 32, 32) for x in a)
    assert all(torch.equal(x, y) for x, y in zip(a, b))  # same seeds, same draws
    assert not torch.equal(a[0], a[1])  # a new draw per call


def test_image_eval_resizes_by_crop_pct_then_center_crops_bicubic():
    img = _photo()
    out = image_transforms(RECIPE, (224, 224), MEAN).eval(img)
    expected = TF.pil_to_tensor(TF.center_crop(
        TF.resize(img, 256, interpolation=TF.InterpolationMode.BICUBIC), [224, 224]))
    assert out.dtype == torch.uint8 and torch.equal(out, expected)  # 224 / 0.875 = 256


def test_without_a_crop_the_whole_image_is_resized():
    img = _photo(20, 40)
    tf = image_transforms(Augment(), (10, 10), MEAN)
    x = torch.zeros(3, 20, 40, dtype=torch.uint8)
    x[:, :, 20:] = 255  # right half white: squashed, not cropped, it stays half the width
    img = TF.to_pil_image(x)
    for out in (tf.train(img), tf.eval(img)):
        assert out.shape == (3, 10, 10)
        assert out[:, :, :4].max() < 60 and out[:, :, 6:].min() > 200


def _still_video(frames=6, h=40, w=56):
    still = TF.pil_to_tensor(_photo(h, w, seed=3))
    return still[None].repeat(frames, 1, 1, 1)  # [T, 3, H, W], every frame the same


@pytest.mark.parametrize("aug", [
    Augment(crop_scale=(0.08, 1.0), crop_ratio=(0.75, 1.3333), hflip=0.5,
            rand_augment="rand-m7-n4-mstd0.5-inc1", interpolation="bicubic"),
    Augment(short_side_jitter=(36, 48), hflip=0.5, rand_augment="rand-m7-n4-mstd0.5-inc1"),
])
def test_video_train_draws_once_per_clip(aug):
    tf = VideoTrain(aug, (24, 24), MEAN)
    video = _still_video()
    outs = []
    for seed in range(6):
        seed_everything(seed)
        clip = tf(video)
        assert clip.shape == (3, 6, 24, 24) and clip.dtype == torch.uint8
        for t in range(1, 6):  # identical frames in, identical frames out
            assert torch.equal(clip[:, t], clip[:, 0])
        outs.append(clip)
    assert len({o.float().sum().item() for o in outs}) > 1  # but a new draw per clip


def test_video_eval_views_are_clips_times_crops():
    ramp = torch.arange(64, dtype=torch.uint8).repeat(3, 32, 1) * 4  # [3, 32, 64]: dark->light
    frames = ramp[None].repeat(8, 1, 1, 1)  # 2 clips of 4 frames
    views = VideoEval((16, 16), crop_pct=1.0, crops=3)(frames, clips=2)
    assert views.shape == (6, 3, 4, 16, 16) and views.dtype == torch.uint8
    means = views.float().mean(dim=(1, 2, 3, 4))
    assert means[0] < means[1] < means[2]  # left, center, right along the long side
    assert torch.equal(views[:3], views[3:])  # the second clip: the same three crops
    whole = VideoEval((16, 16))(frames, clips=2)  # no crop_pct, one crop: resized whole
    assert whole.shape == (2, 3, 4, 16, 16)


def test_posterize_to_no_bit_is_black_not_an_error():
    ra = _rand_augment("rand-m10-n1-mstd0-inc1", (32, 32), MEAN, "bicubic")
    ra.ops = [op for op in ra.ops if op.name == "PosterizeIncreasing"]
    ra.ops[0].prob = 1.0  # magnitude 10: keep 4 - 4 = 0 bits, which Pillow 13 refuses
    out = np.asarray(ra(_photo(32, 32)))
    assert out.max() == 0
    assert pillow_safe(ra) is ra
