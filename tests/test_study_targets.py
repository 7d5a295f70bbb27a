"""The study's new targets (issue 11 item 8) and per-seed target draws (item 5),
checked against independent computations: the band-limited image's DFT
(numpy, bin by bin), the natural image against Pillow's box filter, and the
presets' signals against the constructors."""
import numpy as np
import pytest

from regions.study.jobs import build_jobs
from regions.study.presets import SEED_OF_JOB
from regions.study.signals import band_limited_image, natural_image, random_image


@pytest.mark.parametrize("shape,f_max", [((16, 16), 3.0), ((12, 20), 2.5), ((32, 32), 6)])
def test_band_limited_image_has_no_energy_above_its_band(shape, f_max):
    s = band_limited_image(shape, channels=2, max_frequency=f_max, seed=3)
    H, W = shape
    img = s.as_grid()
    ky = np.fft.fftfreq(H) * H
    kx = np.fft.fftfreq(W) * W
    radius = np.hypot(ky[:, None], kx[None, :])
    for c in range(2):
        power = np.abs(np.fft.fft2(img[..., c])) ** 2
        total = power[radius > 0].sum()
        assert power[radius > f_max].sum() <= 1e-24 * total
        assert power[(radius > 0) & (radius <= f_max)].sum() > 0.99 * total
        assert img[..., c].min() == 0.0 and img[..., c].max() == 1.0


def test_band_limited_image_draws_differ_by_seed_and_repeat():
    a, b = band_limited_image(16, seed=0), band_limited_image(16, seed=1)
    assert not np.allclose(a.targets, b.targets)
    np.testing.assert_array_equal(a.targets, band_limited_image(16, seed=0).targets)


@pytest.mark.parametrize("bad", [0, -1, 8, 9.5, float("nan")])
def test_band_limited_image_rejects_a_band_at_or_past_nyquist(bad):
    with pytest.raises(ValueError, match="max_frequency"):
        band_limited_image(16, max_frequency=bad)


def test_natural_image_is_the_box_filtered_photograph():
    from matplotlib import cbook
    from PIL import Image

    photo = np.asarray(Image.open(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)))
    assert photo.shape == (600, 512, 3)
    s = natural_image(16)
    assert s.grid_shape == (16, 16) and s.targets.shape == (256, 3)
    k = 32  # 512 // 16 (600 // 16 = 37 is larger)
    top = (600 - 16 * k) // 2
    crop = photo[top:top + 16 * k].astype(np.float64) / 255.0
    # the mean is kept exactly by averaging whole blocks
    np.testing.assert_allclose(s.targets.mean(0), crop.reshape(-1, 3).mean(0), rtol=1e-12)
    # Pillow's box filter (area average) of the same crop, float per channel
    for c in range(3):
        ref = np.asarray(Image.fromarray(crop[..., c].astype(np.float32), mode="F")
                         .resize((16, 16), Image.BOX), dtype=np.float64)
        np.testing.assert_allclose(s.as_grid()[..., c], ref, atol=1e-5)
    grey = natural_image(16, channels=1)
    np.testing.assert_allclose(grey.targets[:, 0], s.targets.mean(1), rtol=1e-12)


def test_natural_image_rejects_bad_sizes_and_channels():
    with pytest.raises(ValueError, match="exceeds"):
        natural_image(601)
    with pytest.raises(ValueError, match="channels"):
        natural_image(16, channels=2)
    with pytest.raises(ValueError, match="size"):
        natural_image((16, 0))


def _targets(jobs, name, seed):
    return next(j["signal"].targets for j in jobs if j["name"] == name and j["seed"] == seed)


def test_quick_preset_draws_one_noise_target_per_seed_shared_across_experiments():
    jobs, cfg, _ = build_jobs("quick")
    assert len(cfg["seeds"]) >= 3
    seeds = cfg["seeds"]
    for name in ("2d-raw", "band-raw", "1d-raw", "int-adam-treated"):
        draws = [_targets(jobs, name, s) for s in seeds]
        assert not np.allclose(draws[0], draws[1]), name
    # the experiments compared by seed see the same target for a seed
    for s in seeds:
        np.testing.assert_array_equal(_targets(jobs, "2d-raw", s), _targets(jobs, "2d-pe5", s))
        np.testing.assert_array_equal(_targets(jobs, "2d-raw", s),
                                      _targets(jobs, "int-gd-control", s))
        np.testing.assert_array_equal(_targets(jobs, "2d-raw", s),
                                      random_image(16, channels=3, seed=s).targets)
    # one photograph for every seed
    np.testing.assert_array_equal(_targets(jobs, "nat-raw", 0), _targets(jobs, "nat-raw", 2))


def test_a_signal_seed_must_be_an_int_or_the_job_seed():
    exp = {"name": "x", "signal": ("random_image", {"size": 4, "seed": "every"}),
           "train": {"width": 4, "epochs": 1}}
    with pytest.raises(ValueError, match=repr(SEED_OF_JOB)):
        build_jobs({"experiments": [exp]})
    exp["signal"] = ("natural_image", {"size": 4, "seed": 0})
    with pytest.raises(ValueError, match="does not take"):
        build_jobs({"experiments": [exp]})
