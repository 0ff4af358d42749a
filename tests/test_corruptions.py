"""MNIST-C's corruptions: each does what it says on a constructed image, checked against hand
computations (geometry, rates from scipy.stats), and the content-hashed cache."""

from __future__ import annotations

import math
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import stats

from mnistbench.data import corruption_generators as gen
from mnistbench.data import corruptions as mc
from mnistbench.data.corruptions import CORRUPTION_NAMES, corrupt, corrupted_test_set
from mnistbench.errors import ConfigError, DataError

# Corruptions without randomness: the same for every seed.
FIXED = {"scale", "brightness", "stripe", "canny_edges"}


def digits(n: int = 6) -> torch.Tensor:
    """n small digit-like images: a ring, a bar and a cross, shifted a little each."""
    rows, cols = np.mgrid[0:28, 0:28]
    out = np.zeros((n, 28, 28), dtype=np.uint8)
    for k in range(n):
        r, c = 13.5 + (k % 3) - 1, 13.5 - (k % 2)
        radius = np.hypot(rows - r, cols - c)
        if k % 3 == 0:
            out[k][(radius > 5) & (radius < 8)] = 255
        elif k % 3 == 1:
            out[k, 5:23, 12:15] = 230
        else:
            out[k, 12:16, 6:22] = 200
            out[k, 6:22, 12:16] = 200
    return torch.from_numpy(out)


def blob(row: float, col: float, sigma: float = 1.2) -> np.ndarray:
    """(1, 28, 28) float image: a Gaussian spot at (row, col)."""
    rows, cols = np.mgrid[0:28, 0:28]
    return np.exp(-((rows - row) ** 2 + (cols - col) ** 2) / (2 * sigma**2))[None]


def centroid(image: np.ndarray) -> tuple[float, float]:
    """(row, col) centre of mass of a 2D image."""
    rows, cols = np.mgrid[0:28, 0:28]
    total = image.sum()
    return float((rows * image).sum() / total), float((cols * image).sum() / total)


def binomial_ok(count: int, n: int, p: float, z: float = 4.5) -> bool:
    """Whether `count` of `n` is within z standard deviations of Binomial(n, p)."""
    return abs(count - n * p) <= z * math.sqrt(n * p * (1 - p))


# --- the interface --------------------------------------------------------------------------


def test_names_are_mnist_c_fifteen_in_paper_order() -> None:
    assert CORRUPTION_NAMES == (
        "shot_noise",
        "impulse_noise",
        "glass_blur",
        "motion_blur",
        "shear",
        "scale",
        "rotate",
        "brightness",
        "translate",
        "stripe",
        "fog",
        "spatter",
        "dotted_line",
        "zigzag",
        "canny_edges",
    )


@pytest.mark.parametrize("name", CORRUPTION_NAMES)
def test_every_corruption_is_uint8_same_shape_deterministic_and_leaves_input(name: str) -> None:
    images = digits()
    before = images.clone()
    out = corrupt(images, name, seed=3)
    assert out.dtype == torch.uint8 and out.shape == images.shape
    assert torch.equal(images, before)
    assert torch.equal(out, corrupt(images, name, seed=3))
    assert not torch.equal(out, images), f"{name} changed nothing"
    if name not in FIXED:
        assert not torch.equal(out, corrupt(images, name, seed=4)), f"{name} ignores its seed"


def test_an_empty_batch_stays_empty() -> None:
    empty = torch.zeros(0, 28, 28, dtype=torch.uint8)
    assert all(corrupt(empty, name, 0).shape == (0, 28, 28) for name in CORRUPTION_NAMES)


def test_unknown_name_names_the_closest() -> None:
    with pytest.raises(ConfigError, match="'shot_noise'"):
        corrupt(digits(1), "shot_nosie", 0)
    with pytest.raises(ConfigError, match="'rotate'"):
        corrupted_test_set(digits(1), "rotation", 0, Path("unused"))


def test_wrong_input_is_refused() -> None:
    with pytest.raises(ValueError, match="uint8"):
        corrupt(digits(1).float(), "rotate", 0)
    with pytest.raises(ValueError, match=r"\(N, 28, 28\)"):
        corrupt(torch.zeros(1, 1, 28, 28, dtype=torch.uint8), "rotate", 0)
    with pytest.raises(ConfigError, match="seed"):
        corrupt(digits(1), "rotate", -1)


# --- geometry -------------------------------------------------------------------------------


def test_rotate_quarter_turn_moves_a_pixel_where_worked_out() -> None:
    # Inverse map about c = (13.5, 13.5): output (col 10, row 7) samples R(90°)((10, 7) - c) + c
    # = (col 20, row 10), so the pixel at row 10, col 20 lands at row 7, col 10 (exactly).
    x = np.zeros((1, 28, 28))
    x[0, 10, 20] = 1.0
    out = gen.rotate_images(x, np.array([math.pi / 2]))
    assert out[0, 7, 10] == pytest.approx(1.0)
    assert out.sum() == pytest.approx(1.0)


def test_rotate_by_point_four_radians_moves_a_spot_on_the_circle() -> None:
    angle = 0.4
    q = np.array([18.0, 8.0]) - 13.5  # (col, row) of the spot about the centre
    # Content turns by -angle: p = R(-angle) q + c.
    p = np.array(
        [
            math.cos(angle) * q[0] + math.sin(angle) * q[1],
            -math.sin(angle) * q[0] + math.cos(angle) * q[1],
        ]
    )
    out = gen.rotate_images(blob(8.0, 18.0), np.array([angle]))
    row, col = centroid(out[0])
    assert (col, row) == pytest.approx(tuple(p + 13.5), abs=0.05)


def test_corrupt_rotate_uses_plus_or_minus_point_four_radians() -> None:
    images = digits(12)
    out = corrupt(images, "rotate", seed=0).numpy()
    x = images.numpy() / 255.0
    both = [
        np.round(np.clip(gen.rotate_images(x, np.full(12, s * 0.4)), 0, 1) * 255) for s in (1, -1)
    ]
    which = [
        next(s for s, cand in zip((1, -1), both, strict=True) if np.array_equal(out[i], cand[i]))
        for i in range(12)
    ]
    assert set(which) == {1, -1}


def test_translate_moves_by_three_pixels_on_each_axis() -> None:
    images = digits(16)
    out = corrupt(images, "translate", seed=1).numpy()
    x = images.numpy()
    seen = set()
    for i in range(16):
        matches = []
        for dr in (-3, 3):
            for dc in (-3, 3):
                moved = np.zeros_like(x[i])
                src = x[i][max(0, -dr) : 28 - max(0, dr), max(0, -dc) : 28 - max(0, dc)]
                moved[max(0, dr) : 28 - max(0, -dr), max(0, dc) : 28 - max(0, -dc)] = src
                if np.array_equal(out[i], moved):
                    matches.append((dr, dc))
        assert len(matches) == 1, f"image {i} is not a (±3, ±3) shift"
        seen.add(matches[0])
    assert len(seen) >= 3  # the signs are drawn per image and per axis


def test_translate_images_known_offset() -> None:
    x = np.zeros((1, 28, 28))
    x[0, 5, 6] = 1.0
    out = gen.translate_images(x, np.array([[4.0, -2.0]]))  # (d_col, d_row)
    assert out[0, 3, 10] == pytest.approx(1.0) and out.sum() == pytest.approx(1.0)


def test_scale_shrinks_to_seventy_percent_about_the_centre() -> None:
    out = gen.scale_images(blob(6.0, 20.0), 0.7)
    row, col = centroid(out[0])
    assert row == pytest.approx(13.5 + 0.7 * (6.0 - 13.5), abs=0.05)
    assert col == pytest.approx(13.5 + 0.7 * (20.0 - 13.5), abs=0.05)
    # A bar of length 18 becomes one of about 0.7 * 18 = 12.6 pixels.
    bar = digits(2)[1:2]
    lit = (corrupt(bar, "scale", 0)[0] > 127).any(dim=1).sum().item()
    assert lit in (12, 13, 14)


def test_shear_moves_a_spot_by_the_inverse_of_skimage_shear() -> None:
    s = 0.4
    # Inverse map: input (col, row) = (col' - sin(s) row' + t0, cos(s) row' + t1), t fixing c.
    t0, t1 = 13.5 * (1 - 1 + math.sin(s)), 13.5 * (1 - math.cos(s))
    q_col, q_row = 16.0, 20.0
    row = (q_row - t1) / math.cos(s)
    col = q_col - t0 + math.sin(s) * row
    out = gen.shear_images(blob(q_row, q_col), np.array([s]))
    assert centroid(out[0]) == pytest.approx((row, col), abs=0.06)
    # The centre stays where it is.
    centre = gen.shear_images(blob(13.5, 13.5), np.array([-s]))
    assert centroid(centre[0]) == pytest.approx((13.5, 13.5), abs=0.02)


# --- noise ----------------------------------------------------------------------------------


def test_shot_noise_is_poisson_with_three_photons() -> None:
    n = 200 * 784
    white = torch.full((200, 28, 28), 255, dtype=torch.uint8)
    out = corrupt(white, "shot_noise", seed=0).numpy()
    # Poisson(3)/3 stays at 1 (clipped) when the count is at least 3.
    p_changed = stats.poisson.cdf(2, 3.0)
    assert binomial_ok(int((out != 255).sum()), n, p_changed)
    # Two of three photons: 170 = round(2/3 * 255).
    assert binomial_ok(int((out == 170).sum()), n, stats.poisson.pmf(2, 3.0))
    grey = torch.full((200, 28, 28), 85, dtype=torch.uint8)  # 1/3: Poisson(1)
    out = corrupt(grey, "shot_noise", seed=0).numpy()
    assert binomial_ok(int((out == 0).sum()), n, stats.poisson.pmf(0, 1.0))


def test_impulse_noise_flips_seventeen_percent_half_salt_half_pepper() -> None:
    n = 200 * 784
    blank = torch.zeros(200, 28, 28, dtype=torch.uint8)
    out = corrupt(blank, "impulse_noise", seed=0).numpy()
    assert set(np.unique(out)) == {0, 255}
    assert binomial_ok(int((out == 255).sum()), n, 0.17 / 2)
    grey = torch.full((200, 28, 28), 100, dtype=torch.uint8)
    out = corrupt(grey, "impulse_noise", seed=0).numpy()
    assert binomial_ok(int((out != 100).sum()), n, 0.17)
    assert binomial_ok(int((out == 0).sum()), n, 0.17 / 2)


# --- lighting and occlusion -----------------------------------------------------------------


def test_brightness_adds_half_the_range() -> None:
    x = torch.zeros(1, 28, 28, dtype=torch.uint8)
    x[0, 0, :3] = torch.tensor([50, 127, 200], dtype=torch.uint8)
    out = corrupt(x, "brightness", 0)[0]
    # x + 127.5, np.round (half to even), clipped: 0 -> 128 (127.5), 50 -> 178 (177.5).
    assert out[0, :3].tolist() == [178, 254, 255]
    assert out[1:].unique().tolist() == [128]


def test_stripe_inverts_the_side_columns_and_keeps_the_digit() -> None:
    images = digits(3)
    out = corrupt(images, "stripe", 0)
    assert torch.equal(out[:, :, 7:21], images[:, :, 7:21])
    assert torch.equal(out[:, :, :7], 255 - images[:, :, :7])
    assert torch.equal(out[:, :, 21:], 255 - images[:, :, 21:])


def test_dotted_line_adds_dashes_and_keeps_the_digit() -> None:
    images = digits(20)
    out = corrupt(images, "dotted_line", seed=2)
    added = out.int() - images.int()
    assert (added >= 0).all()  # nothing of the digit is removed
    blank = torch.zeros(20, 28, 28, dtype=torch.uint8)
    line = corrupt(blank, "dotted_line", seed=2).numpy()
    assert ((line > 0).sum(axis=(1, 2)) >= 10).all()
    off = (np.arange(28) // 2) % 2 == 0  # column pairs 0-1, 4-5, ... are gaps
    assert (line[:, :, off] == 0).all() and (line[:, :, 27] == 0).all()
    # The line is about 3 pixels thick: at most 3 lit pixels per lit column.
    assert ((line > 0).sum(axis=1) <= 3).all()


def test_zigzag_adds_a_line_from_column_two_to_twenty_five() -> None:
    images = digits(20)
    out = corrupt(images, "zigzag", seed=5)
    assert ((out.int() - images.int()) >= 0).all()
    blank = torch.zeros(20, 28, 28, dtype=torch.uint8)
    lines = corrupt(blank, "zigzag", seed=5).numpy()
    lit_cols = np.flatnonzero((lines > 0).any(axis=(0, 1)))
    assert lit_cols.min() == 2 and lit_cols.max() == 25
    assert ((lines > 0).sum(axis=(1, 2)) >= 15).all()  # fewer where it runs off the edge


def test_line_from_points_is_brightest_on_the_line() -> None:
    line = gen.line_from_points(np.array([0.0]), np.array([5.0]), np.array([27.0]), np.array([5.0]))
    assert (line[0, 5, :27] == 1).all() and (line[0, :, 27] == 0).all()
    # One row away: log(1 - 1/2.3) + 1.
    assert line[0, 6, 3] == pytest.approx(math.log(1 - 1 / 2.3) + 1)
    assert (line[0, 7] == 0).all()  # 2 rows away is past the band (log < -1)


# --- edges, blur, weather -------------------------------------------------------------------


def test_canny_edges_of_a_square_lie_on_its_border() -> None:
    x = np.zeros((1, 28, 28))
    x[0, 9:19, 9:19] = 1.0  # rows and columns 9..18
    edges = gen.canny_edges_images(x)[0]
    rows, cols = np.nonzero(edges)
    border = {8, 9, 18, 19}  # the step lies between 8|9 and 18|19
    on_border = np.isin(rows, list(border)) | np.isin(cols, list(border))
    assert on_border.all()
    assert not edges[11:17, 11:17].any() and not edges[:6].any() and not edges[22:].any()
    for k in range(11, 17):  # the middle of every side is found
        assert edges[8:10, k].any() and edges[18:20, k].any()
        assert edges[k, 8:10].any() and edges[k, 18:20].any()
    out = corrupt(torch.from_numpy((x * 255).astype(np.uint8)), "canny_edges", 0)
    assert set(out.unique().tolist()) == {0, 255}
    assert torch.equal(out[0] > 0, torch.from_numpy(edges))


def test_canny_edges_of_a_blank_image_are_none() -> None:
    out = corrupt(torch.zeros(2, 28, 28, dtype=torch.uint8), "canny_edges", 0)
    assert out.sum() == 0


def test_motion_blur_trails_along_the_angle() -> None:
    x = np.zeros((2, 28, 28))
    x[:, 14, 14] = 1.0
    out = gen.motion_blur_images(x, np.array([0.0, 90.0]))
    # Output p sums kernel[i] * x[p + i * direction]: a dot leaves its trail behind it.
    width = np.arange(21.0)
    kernel = np.exp(-(width**2) / 18)
    kernel /= kernel.sum()
    assert out[0, 14, 14::-1][:15] == pytest.approx(kernel[:15])  # to the left at 0 degrees
    assert out[1, 14::-1, 14][:15] == pytest.approx(kernel[:15])  # upwards at 90 degrees
    assert out[0].sum() == pytest.approx(kernel[:15].sum())


@pytest.mark.parametrize("name", ["glass_blur", "motion_blur", "fog", "spatter"])
def test_blur_and_weather_change_the_image_within_bounds(name: str) -> None:
    images = digits(8)
    out = corrupt(images, name, seed=7).float()
    x = images.float()
    diff = (out - x).abs().mean().item()
    assert 3 < diff < 120, f"{name}: mean change {diff:.1f} grey levels"
    # The digit is still there: the corrupted image correlates with the clean one.
    for i in range(8):
        r = np.corrcoef(out[i].flatten(), x[i].flatten())[0, 1]
        assert r > 0.3, f"{name}: image {i} correlates only {r:.2f} with its clean self"


def test_glass_blur_blurs_only_vertically_as_the_authors_code_does() -> None:
    x = np.zeros((1, 28, 28))
    x[0, 14, :] = 1.0  # a horizontal line stays a line of constant rows under a vertical blur
    blurred = gen._vertical_gaussian(x, 0.7)
    assert np.allclose(blurred[0], blurred[0, :, :1])
    assert blurred[0, 13, 5] > 0.1


def test_fog_keeps_a_blank_image_blank_and_dims_a_white_one() -> None:
    blank = torch.zeros(2, 28, 28, dtype=torch.uint8)
    assert corrupt(blank, "fog", 0).sum() == 0  # x * max / (max + 3) with max = 0
    white = torch.full((2, 28, 28), 255, dtype=torch.uint8)
    out = corrupt(white, "fog", 0).float() / 255
    # (1 + 3 f) / 4 with f in [0, 1]: between 0.25 and 1.
    assert out.min() >= 0.25 - 1e-6 and out.max() <= 1


def test_plasma_fractal_spans_zero_to_one_and_is_smooth() -> None:
    maps = gen.plasma_fractal(3, np.random.default_rng(0))
    assert maps.shape == (3, 256, 256)
    assert maps.min(axis=(1, 2)) == pytest.approx(0) and maps.max(axis=(1, 2)) == pytest.approx(1)
    # Neighbouring values differ far less than the range: a fractal, not white noise.
    assert np.abs(np.diff(maps, axis=2)).mean() < 0.05


# --- the cache ------------------------------------------------------------------------------


def test_cache_is_written_once_reused_and_named_by_content(tmp_path: Path, monkeypatch) -> None:
    images = digits(4)
    first = corrupted_test_set(images, "spatter", 1, tmp_path)
    files = list(tmp_path.glob("*.npy"))
    assert len(files) == 1
    name = files[0].name
    assert mc.images_sha256(images) in name and "spatter" in name and "seed1" in name
    assert f"gen{mc.GENERATOR_VERSION}" in name
    calls = []
    monkeypatch.setattr(mc, "corrupt", lambda *a: calls.append(a))
    again = corrupted_test_set(images, "spatter", 1, tmp_path)
    assert calls == [] and torch.equal(first, again)
    assert [f.name for f in tmp_path.glob("*.npy")] == [name]
    monkeypatch.undo()
    assert torch.equal(first, corrupt(images, "spatter", 1))
    # Another seed or other images: another file.
    corrupted_test_set(images, "spatter", 2, tmp_path)
    corrupted_test_set(images[:2], "spatter", 1, tmp_path)
    assert len(list(tmp_path.glob("*.npy"))) == 3


def test_a_tampered_cache_file_is_refused(tmp_path: Path) -> None:
    images = digits(4)
    corrupted_test_set(images, "rotate", 0, tmp_path)
    (path,) = tmp_path.glob("*.npy")
    content = bytearray(path.read_bytes())
    content[-1] ^= 0xFF
    path.write_bytes(bytes(content))
    with pytest.raises(DataError, match="does not match the SHA-256"):
        corrupted_test_set(images, "rotate", 0, tmp_path)


# --- against scikit-image, where it is installed (it is not a dependency) --------------------


def test_canny_and_warps_match_scikit_image_where_installed() -> None:
    """Our re-implementations against the library the authors used. CI does not install
    scikit-image, so this runs only where someone has it (see docs/robustness.md)."""
    feature = pytest.importorskip("skimage.feature")
    transform = pytest.importorskip("skimage.transform")
    x = digits(6).numpy() / 255.0
    ref = np.stack([feature.canny(im) for im in x])
    assert np.array_equal(gen.canny_edges_images(x), ref)
    for rotation, shear in ((0.4, 0.0), (-0.4, 0.0), (0.0, 0.4)):
        # skimage < 0.19's AffineTransform(rotation, shear), built by hand (0.19 redefined shear)
        m = np.array(
            [
                [math.cos(rotation), -math.sin(rotation + shear)],
                [math.sin(rotation), math.cos(rotation + shear)],
            ]
        )
        full = np.eye(3)
        full[:2, :2], full[:2, 2] = m, 13.5 * (1 - m.sum(axis=1))
        ref = np.stack([transform.warp(im, transform.AffineTransform(matrix=full)) for im in x])
        ours = gen.warp_affine(x, np.broadcast_to(m, (6, 2, 2)), np.tile(full[:2, 2], (6, 1)))
        assert ours == pytest.approx(ref, abs=1e-12)


def _imagemagick() -> str | None:
    """The path of a real ImageMagick 6 Q16 `convert`, if one is installed."""
    for candidate in ("convert-im6.q16", "convert"):
        path = shutil.which(candidate)
        if path is None:
            continue
        version = subprocess.run([path, "-version"], capture_output=True, text=True, check=False)
        if "Version: ImageMagick" in version.stdout and "Q16" in version.stdout:
            return path
    return None


def test_motion_blur_matches_imagemagick_where_installed(tmp_path: Path) -> None:
    """The authors' motion blur is ImageMagick's (through Wand); ours must equal its 8-bit PNG.
    CI has no ImageMagick, so this runs only where someone installed it."""
    image_module = pytest.importorskip("PIL.Image")
    convert = _imagemagick()
    if convert is None:
        pytest.skip("ImageMagick 6 (Q16) is not installed")
    images = digits(4).numpy()
    angles = (0.0, 45.0, -31.7, 12.25)
    for i, (image, angle) in enumerate(zip(images, angles, strict=True)):
        source, blurred = tmp_path / f"in{i}.png", tmp_path / f"out{i}.png"
        image_module.fromarray(image).save(source)
        subprocess.run(
            [convert, str(source), "-motion-blur", f"10x3+{angle}", str(blurred)], check=True
        )
        reference = np.array(image_module.open(blurred).convert("L"))
        quantum = np.round(gen.motion_blur_images(image[None] / 255.0, np.array([angle])) * 65535)
        assert np.array_equal(np.floor(quantum / 257)[0].astype(np.uint8), reference)


def test_plasma_crop_is_the_corner_of_the_full_map() -> None:
    full = gen.plasma_fractal(2, np.random.default_rng(5))
    corner = gen.plasma_fractal(2, np.random.default_rng(5), crop=28)
    assert corner.shape == (2, 28, 28) and np.array_equal(corner, full[:, :28, :28])
