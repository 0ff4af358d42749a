"""How each of MNIST-C's 15 corruptions is drawn (data/corruptions.py is the interface: names,
checks, the cache): numpy and scipy.ndimage re-implementations of the authors' public code
(github.com/google-research/mnist-c, `corruptions.py`), each at the severity their `corrupt`
function uses by default, on (N, 28, 28) float64 images in [0, 1]. A change to any output for
the same input and seed must bump GENERATOR_VERSION there, so caches of the old one are not read.

How each one follows theirs (all pixel work in float64 on [0, 1], like theirs; the result is
rounded to uint8 with np.round, as their `round_and_astype` did):

- shot_noise: Poisson(3x) / 3 (their severity 5, c=3). Same.
- impulse_noise: salt and pepper on 17% of pixels, half each (severity 4; skimage
  `random_noise(mode="s&p", amount=0.17)`). Same distribution, drawn with numpy.
- glass_blur: Gaussian blur sigma 0.7, then two passes of local swaps (max_delta 1), then the
  blur again (severity 1). Their blur is skimage `gaussian(x, sigma, multichannel=True)` on a 2D
  image, which treats the last axis as colour channels: it blurs along rows (vertically) only;
  we keep that. Their `np.random.randint(-1, 1)` draws offsets in {-1, 0}, so a pixel swaps only
  with itself or an up/left neighbour; we keep that too. Same, vectorised over images (the swap
  order within an image is theirs).
- motion_blur: ImageMagick `MotionBlurImage(radius=10, sigma=3, angle~U(-45, 45) degrees)`
  (severity 1). Re-implemented from ImageMagick's algorithm: a one-sided kernel of width
  2*ceil(radius)+1 = 21 with weights exp(-i^2 / (2 sigma^2)), normalised, at offsets
  (ceil(i cos a - 0.5), ceil(i sin a - 0.5)), edge pixels repeated outside the image (its default
  virtual-pixel method), and its rounding: to 16 bits (Q16), then truncated to 8 bits by its
  PNG writer. Equal to ImageMagick 6.9.11 Q16's output on every pixel we compared.
- shear: skimage (before 0.19) `AffineTransform(shear=±0.4)` as the inverse map, centred on
  (13.5, 13.5), bilinear, zeros outside (severity 2). Same matrix [[1, -sin s], [0, cos s]].
  skimage 0.19 changed what `shear` means; we follow the version the authors used (2018-19).
- scale: inverse map scaled by 1/0.7 about the centre, so the digit shrinks to 70% (severity 3).
- rotate: ±0.4 rad (22.9 degrees) about the centre, bilinear (severity 2).
- translate: 3 pixels along each axis, each sign random (severity 3); exact integer shifts.
  The warps use scipy `map_coordinates(order=1, mode="grid-constant")`, which samples zeros
  outside the image exactly as skimage's `warp` does (mode "constant" there).
- brightness: their skimage HSV round trip on a grey image adds 0.5 to V and maps back, which
  is clip(x + 0.5, 0, 1) (severity 5); we compute that directly.
- stripe: columns 0-6 and 21-27 inverted (255 - x). Same.
- fog: a 256x256 plasma fractal (diamond-square, wibble decay 1.4), its top-left 28x28, times 3,
  added, then rescaled by max/(max + 3) (severity 5). Same algorithm, batched over images (the
  random draws differ only in order); a blank image stays blank, as in theirs.
- spatter: Gaussian "liquid" N(0.65, 0.3) blurred (sigma 1), thresholded at 0.65, its mask
  blurred (sigma 1.5) and cut below 0.8, painted grey 63/255 (severity 4). Same.
- dotted_line: their `line_from_points` (a 2.3-pixel log-decay band around the line through
  (0, r0) and (27, r1), r0, r1 in 0..26, column 27 left clean) with every other pair of columns
  removed. Same (theirs is numpy already; no PIL drawing is involved).
- zigzag: their zigzag of 7 segments (amplitude 2, period 4) from column 2 to 25, rows r0 in
  0..26 and r1 = r0 + (-5..4), each segment drawn with `line_from_points`. Same, including its
  odd last point (d, r/(2(d - max_c))).
- canny_edges: skimage (0.14-0.18) `feature.canny` with its defaults (sigma 1, thresholds 0.1 and
  0.2 of the range, 8-connected hysteresis), re-implemented step for step (masked Gaussian
  smoothing, Sobel, the four-sector interpolated non-maximum suppression, hysteresis by
  connected components). Same up to float rounding.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy import ndimage

SIZE = 28  # the generators are written for 28x28 images, as MNIST-C's are
CENTRE = (SIZE - 1) / 2  # 13.5: the fixed point of shear, scale and rotate in their code

# --- parameters: the authors' default severity of each (their list, 1-based index) -----------
SHOT_NOISE_PHOTONS = 3.0  # shot_noise severity 5 of [60, 25, 12, 5, 3]
IMPULSE_AMOUNT = 0.17  # impulse_noise severity 4 of [.03, .06, .09, .17, .27]
GLASS_SIGMA_PX = 0.7  # glass_blur severity 1: (sigma, max_delta, iterations) = (0.7, 1, 2)
GLASS_MAX_DELTA_PX = 1
GLASS_ITERATIONS = 2
MOTION_RADIUS_PX = 10  # motion_blur severity 1: (radius, sigma) = (10, 3)
MOTION_SIGMA_PX = 3.0
MOTION_MAX_ANGLE_DEG = 45.0  # angle ~ U(-45, 45) degrees
SHEAR = 0.4  # shear severity 2 of [.2, .4, .6, .8, 1.] (skimage shear angle, radians)
SCALE_FACTOR = 0.7  # scale severity 3: inverse map scaled by 1/0.7
ROTATE_RAD = 0.4  # rotate severity 2 of [.2, .4, .6, .8, 1.] (radians, 22.9 degrees)
BRIGHTNESS_SHIFT = 0.5  # brightness severity 5 of [.1, .2, .3, .4, .5] (added to HSV value)
TRANSLATE_PX = 3  # translate severity 3 of [1, 2, 3, 4, 5]
STRIPE_COLUMNS = 7  # stripe: the first 7 and the last 7 columns are inverted
FOG_STRENGTH = 3.0  # fog severity 5: (3., 1.4)
FOG_WIBBLE_DECAY = 1.4
FOG_MAP_SIZE = 256  # their plasma_fractal's default map size; we use its top-left 28x28
# spatter severity 4: (loc, scale, sigma, threshold, mask sigma, mud); mud=1 is their only mode
SPATTER_LOC = 0.65
SPATTER_SCALE = 0.3
SPATTER_SIGMA_PX = 1.0
SPATTER_THRESHOLD = 0.65
SPATTER_MASK_SIGMA_PX = 1.5
SPATTER_MASK_CUT = 0.8
SPATTER_GREY = 63 / 255
LINE_HALF_WIDTH_PX = 2.3  # line_from_points: log(1 - d/2.3) + 1 brightness at vertical distance d
ZIGZAG_LENGTH_PX = 2.0  # zigzag: a (half-period) and b (amplitude)
ZIGZAG_WIDTH_PX = 2.0
CANNY_SIGMA_PX = 1.0  # skimage canny defaults: sigma 1, thresholds 0.1 and 0.2 of the range
CANNY_LOW = 0.1
CANNY_HIGH = 0.2

_CHUNK = 1024  # images per chunk where a step needs (chunk, 28, 28)-sized temporaries per axis

Images = np.ndarray  # (N, 28, 28) float64 in [0, 1], the working form of every generator


# =============================================================================================
# Geometry: affine warps (shear, scale, rotate, translate)
# =============================================================================================


def warp_affine(x: Images, matrices: np.ndarray, offsets: np.ndarray) -> Images:
    """Resample each image at `matrix @ (col, row) + offset` of every output pixel (an inverse
    map, as skimage's `warp` takes it), bilinear, zeros outside the image.

    `matrices` is (N, 2, 2) and `offsets` (N, 2), both in (x=col, y=row) order like skimage's
    AffineTransform.params.
    """
    n = x.shape[0]
    rows, cols = np.mgrid[0:SIZE, 0:SIZE].astype(np.float64)  # (28, 28) each
    out = np.empty_like(x)
    for start in range(0, n, _CHUNK):
        stop = min(start + _CHUNK, n)
        m = matrices[start:stop, :, :, None, None]  # (B, 2, 2, 1, 1)
        t = offsets[start:stop, :, None, None]  # (B, 2, 1, 1)
        src_col = m[:, 0, 0] * cols + m[:, 0, 1] * rows + t[:, 0]  # (B, 28, 28)
        src_row = m[:, 1, 0] * cols + m[:, 1, 1] * rows + t[:, 1]
        index = np.broadcast_to(
            np.arange(stop - start, dtype=np.float64)[:, None, None], src_row.shape
        )
        # Order 1 in 3D with an integral image index is bilinear within each image;
        # "grid-constant" interpolates towards zeros outside, like skimage's constant mode.
        out[start:stop] = ndimage.map_coordinates(
            x[start:stop], [index, src_row, src_col], order=1, mode="grid-constant", cval=0.0
        )
    return out


def _centred(matrices: np.ndarray) -> np.ndarray:
    """The offsets that keep the centre (13.5, 13.5) fixed, as the authors compute them."""
    return CENTRE * (1.0 - matrices.sum(axis=2))  # (N, 2)


def rotate_images(x: Images, angles_rad: np.ndarray) -> Images:
    """skimage AffineTransform(rotation=angle) about the centre as the inverse map: content turns
    by -angle in (col, row) coordinates (rows grow downwards), i.e. anticlockwise on screen for
    a positive angle."""
    c, s = np.cos(angles_rad), np.sin(angles_rad)
    m = np.stack([np.stack([c, -s], -1), np.stack([s, c], -1)], 1)  # (N, 2, 2)
    return warp_affine(x, m, _centred(m))


def shear_images(x: Images, shears_rad: np.ndarray) -> Images:
    """skimage (< 0.19) AffineTransform(shear=s) about the centre as the inverse map: output
    (col, row) samples input (col - sin(s) row, cos(s) row), shifted to fix the centre."""
    one, zero = np.ones_like(shears_rad), np.zeros_like(shears_rad)
    m = np.stack(
        [np.stack([one, -np.sin(shears_rad)], -1), np.stack([zero, np.cos(shears_rad)], -1)], 1
    )
    return warp_affine(x, m, _centred(m))


def scale_images(x: Images, factor: float) -> Images:
    """Content scaled by `factor` about the centre (their inverse map scales by 1/factor)."""
    m = np.broadcast_to(np.eye(2) / factor, (x.shape[0], 2, 2)).copy()
    return warp_affine(x, m, _centred(m))


def translate_images(x: Images, shifts_px: np.ndarray) -> Images:
    """Content moved by (d_col, d_row) = shifts_px[i] (N, 2), zeros coming in."""
    m = np.broadcast_to(np.eye(2), (x.shape[0], 2, 2)).copy()
    return warp_affine(x, m, -np.asarray(shifts_px, dtype=np.float64))


def _random_signs(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    return rng.choice(np.array([-1.0, 1.0]), size=shape)


def _shear(x: Images, rng: np.random.Generator) -> Images:
    return shear_images(x, SHEAR * _random_signs(rng, (x.shape[0],)))


def _scale(x: Images, rng: np.random.Generator) -> Images:
    return scale_images(x, SCALE_FACTOR)


def _rotate(x: Images, rng: np.random.Generator) -> Images:
    return rotate_images(x, ROTATE_RAD * _random_signs(rng, (x.shape[0],)))


def _translate(x: Images, rng: np.random.Generator) -> Images:
    # Their inverse map adds (dx, dy) = (±3, ±3), so content moves by (-dx, -dy): the same set.
    return translate_images(x, TRANSLATE_PX * _random_signs(rng, (x.shape[0], 2)))


# =============================================================================================
# Noise
# =============================================================================================


def _shot_noise(x: Images, rng: np.random.Generator) -> Images:
    return rng.poisson(x * SHOT_NOISE_PHOTONS) / SHOT_NOISE_PHOTONS


def _impulse_noise(x: Images, rng: np.random.Generator) -> Images:
    flipped = rng.random(x.shape) < IMPULSE_AMOUNT
    salt = rng.random(x.shape) < 0.5  # skimage's salt_vs_pepper default
    return np.where(flipped, np.where(salt, 1.0, 0.0), x)


# =============================================================================================
# Blur
# =============================================================================================


def _vertical_gaussian(x: Images, sigma_px: float) -> Images:
    # skimage gaussian(..., multichannel=True) on a 2D image: sigma on rows only (see docstring).
    return ndimage.gaussian_filter(x, sigma=(0.0, sigma_px, 0.0), mode="nearest", truncate=4.0)


def _glass_blur(x: Images, rng: np.random.Generator) -> Images:
    n = x.shape[0]
    pixels = np.floor(_vertical_gaussian(x, GLASS_SIGMA_PX) * 255)  # their np.uint8() truncates
    images = np.arange(n)
    d = GLASS_MAX_DELTA_PX
    # Their loop order (iteration, row from 27 down to 2, column likewise), every image at once:
    # within one image the swaps stay sequential, exactly as theirs.
    for _ in range(GLASS_ITERATIONS):
        for h in range(SIZE - d, d, -1):
            for w in range(SIZE - d, d, -1):
                swap = rng.random(n) < 0.5
                dx, dy = rng.integers(-d, d, size=(2, n))  # randint(-d, d): high excluded
                idx = images[swap]
                hp, wp = h + dy[swap], w + dx[swap]
                here = pixels[idx, h, w]
                pixels[idx, h, w] = pixels[idx, hp, wp]
                pixels[idx, hp, wp] = here
    return _vertical_gaussian(pixels / 255, GLASS_SIGMA_PX)


def motion_blur_images(x: Images, angles_deg: np.ndarray) -> Images:
    """ImageMagick's MotionBlurImage(radius=10, sigma=3, angle) on each image: a one-sided
    Gaussian trail along `angle` (degrees, rows growing downwards), edge pixels repeated."""
    width = 2 * int(np.ceil(MOTION_RADIUS_PX)) + 1  # GetOptimalKernelWidth1D for radius > 0
    i = np.arange(width, dtype=np.float64)
    kernel = np.exp(-(i**2) / (2 * MOTION_SIGMA_PX**2))
    kernel /= kernel.sum()
    a = np.deg2rad(np.asarray(angles_deg, dtype=np.float64))[:, None]  # (N, 1)
    off_col = np.ceil(i * np.cos(a) - 0.5).astype(np.int64)  # (N, width)
    off_row = np.ceil(i * np.sin(a) - 0.5).astype(np.int64)
    pad = width - 1
    padded = np.pad(x, ((0, 0), (pad, pad), (pad, pad)), mode="edge")  # (N, 68, 68)
    side = SIZE + 2 * pad
    flat = padded.reshape(x.shape[0], side * side)
    rows, cols = np.mgrid[0:SIZE, 0:SIZE]
    base = ((rows + pad) * side + (cols + pad)).reshape(1, -1)  # (1, 784)
    out = np.zeros((x.shape[0], SIZE * SIZE))
    for k in range(width):
        index = base + (off_row[:, k] * side + off_col[:, k])[:, None]  # (N, 784)
        out += kernel[k] * np.take_along_axis(flat, index, axis=1)
    return out.reshape(x.shape)


def _motion_blur(x: Images, rng: np.random.Generator) -> Images:
    angles = rng.uniform(-MOTION_MAX_ANGLE_DEG, MOTION_MAX_ANGLE_DEG, size=x.shape[0])
    # ImageMagick (Q16) rounds to 16 bits, then its 8-bit PNG writer truncates: measured to
    # match `convert-im6.q16 -motion-blur 10x3+a` on every pixel (docs/robustness.md).
    quantum = np.round(np.clip(motion_blur_images(x, angles), 0, 1) * 65535)
    return np.floor(quantum / 257) / 255


# =============================================================================================
# Weather and lighting
# =============================================================================================


def _brightness(x: Images, rng: np.random.Generator) -> Images:
    return np.clip(x + BRIGHTNESS_SHIFT, 0.0, 1.0)


def plasma_fractal(
    n: int,
    rng: np.random.Generator,
    size: int = FOG_MAP_SIZE,
    decay: float = FOG_WIBBLE_DECAY,
    crop: int | None = None,
) -> np.ndarray:
    """n toroidal diamond-square height maps (n, size, size), each scaled to [0, 1]; the
    algorithm of the authors' `plasma_fractal` (after FLHerne/mapgen), batched. With `crop`,
    only each map's top-left crop x crop corner is returned (still scaled by the whole map's
    minimum and maximum, as theirs is before they crop)."""
    if size & (size - 1):
        raise ValueError(f"plasma map size must be a power of two, not {size}")
    # float32: the values reach about 1e4 and only their top-left 28x28, scaled to [0, 1], is
    # used; float32's 1e-7 relative precision is far below a grey level, at half the memory.
    maps = np.empty((n, size, size), dtype=np.float32)
    maps[:, 0, 0] = 0.0
    step, wibble = size, 100.0

    def wibbled_mean(total: np.ndarray) -> np.ndarray:
        noise = rng.random(total.shape, dtype=np.float32)  # U(-wibble, wibble) below
        noise = (noise * np.float32(2 * wibble) - np.float32(wibble)) * np.float32(wibble)
        total *= np.float32(0.25)
        total += noise
        return total

    while step >= 2:
        half = step // 2
        # Squares: each cell's centre is the mean of its four corners, plus noise.
        corners = maps[:, ::step, ::step]
        total = corners + np.roll(corners, -1, axis=1)
        total = total + np.roll(total, -1, axis=2)
        maps[:, half::step, half::step] = wibbled_mean(total)
        # Diamonds: edge midpoints from the two corners and two centres around them.
        centres = maps[:, half::step, half::step]
        corners = maps[:, ::step, ::step]
        total = centres + np.roll(centres, 1, axis=1) + corners + np.roll(corners, -1, axis=2)
        maps[:, ::step, half::step] = wibbled_mean(total)
        total = centres + np.roll(centres, 1, axis=2) + corners + np.roll(corners, -1, axis=1)
        maps[:, half::step, ::step] = wibbled_mean(total)
        step //= 2
        wibble /= decay
    low = maps.min(axis=(1, 2), keepdims=True)
    high = maps.max(axis=(1, 2), keepdims=True)
    corner = maps if crop is None else maps[:, :crop, :crop]
    return (corner - low) / (high - low)


def _fog(x: Images, rng: np.random.Generator) -> Images:
    out = np.empty_like(x)
    chunk = 64  # a 256x256 float64 map is 0.5 MB: 32 MB of maps at a time
    for start in range(0, x.shape[0], chunk):
        part = x[start : start + chunk]
        fog = plasma_fractal(part.shape[0], rng, crop=SIZE).astype(np.float64)
        peak = part.max(axis=(1, 2), keepdims=True)
        out[start : start + chunk] = (part + FOG_STRENGTH * fog) * peak / (peak + FOG_STRENGTH)
    return out


def _spatter(x: Images, rng: np.random.Generator) -> Images:
    spatial = (0.0, SPATTER_SIGMA_PX, SPATTER_SIGMA_PX)
    liquid = rng.normal(SPATTER_LOC, SPATTER_SCALE, size=x.shape)
    liquid = ndimage.gaussian_filter(liquid, sigma=spatial, mode="nearest", truncate=4.0)
    mask = (liquid > SPATTER_THRESHOLD).astype(np.float64)
    mask_sigma = (0.0, SPATTER_MASK_SIGMA_PX, SPATTER_MASK_SIGMA_PX)
    mask = ndimage.gaussian_filter(mask, sigma=mask_sigma, mode="nearest", truncate=4.0)
    mask[mask < SPATTER_MASK_CUT] = 0.0
    return x * (1 - mask) + SPATTER_GREY * mask


# =============================================================================================
# Occlusion: stripe, dotted line, zigzag
# =============================================================================================


def _stripe(x: Images, rng: np.random.Generator) -> Images:
    out = x.copy()
    out[:, :, :STRIPE_COLUMNS] = 1.0 - out[:, :, :STRIPE_COLUMNS]
    out[:, :, SIZE - STRIPE_COLUMNS :] = 1.0 - out[:, :, SIZE - STRIPE_COLUMNS :]
    return out


def line_from_points(c0: np.ndarray, r0: np.ndarray, c1: np.ndarray, r1: np.ndarray) -> np.ndarray:
    """The authors' line: brightness log(1 - d/2.3) + 1 (clipped to [0, 1]) at vertical distance
    d from the line through (c0, r0) and (c1, r1), only in columns floor(c0) .. ceil(c1) - 1;
    zero where c0 == c1. Arguments are (N,) arrays; the result is (N, 28, 28)."""
    c0, r0, c1, r1 = (np.asarray(v, dtype=np.float64)[:, None, None] for v in (c0, r0, c1, r1))
    cols = np.arange(SIZE, dtype=np.float64)[None, None, :]
    rows = np.arange(SIZE, dtype=np.float64)[None, :, None]
    vertical = c1 == c0
    slope = np.divide(r1 - r0, c1 - c0, out=np.zeros_like(r0), where=~vertical)
    dist = np.clip(np.abs(rows - (slope * (cols - c0) + r0)), 0, LINE_HALF_WIDTH_PX - 1e-10)
    line = np.clip(np.log(1 - dist / LINE_HALF_WIDTH_PX) + 1, 0, 1)
    inside = (cols >= np.floor(c0)) & (cols < np.ceil(c1)) & ~vertical
    return np.where(inside, line, 0.0)


def _dotted_line(x: Images, rng: np.random.Generator) -> Images:
    n = x.shape[0]
    r0, r1 = rng.integers(0, SIZE - 1, size=(2, n))  # randint(0, 27): rows 0..26
    line = line_from_points(np.zeros(n), r0, np.full(n, SIZE - 1.0), r1)
    # Their dashes: columns in pairs, the first pair off, the next on, and so on.
    off = (np.arange(SIZE) // 2) % 2 == 0
    line[:, :, off] = 0.0
    return np.clip(x + line, 0, 1)


def zigzag_lines(r0: np.ndarray, r1: np.ndarray) -> np.ndarray:
    """The authors' zigzag from (2, r0) towards (25, r1) as (N, 28, 28) brightness; their r1 is
    r0 + (-5..4), and |r1 - r0| <= 5 is required (it fixes the number of segments at 7)."""
    a, b = ZIGZAG_LENGTH_PX, ZIGZAG_WIDTH_PX
    c_start, c_end = 2.0, 25.0
    r0, r1 = np.asarray(r0, dtype=np.float64), np.asarray(r1, dtype=np.float64)
    if np.abs(r1 - r0).max(initial=0) > 5:
        raise ValueError("zigzag_lines draws |r1 - r0| <= 5 only, as the authors' zigzag does")
    theta = np.arctan((r1 - r0) / (c_end - c_start))  # (N,)
    length = (c_end - c_start) / np.cos(theta)
    # |r1 - r0| <= 5 keeps length in [23, 23.6]: always 6 peaks, then their odd last point.
    peaks = int((c_end - c_start - a) // (2 * a)) + 1
    along = [np.zeros_like(r0)] + [np.full_like(r0, (2 * i + 1) * a) for i in range(peaks)]
    across = [np.zeros_like(r0)] + [np.full_like(r0, (-1) ** i * b) for i in range(peaks)]
    last_across = (-1) ** (peaks - 1) * b
    full = (2 * a) * (length // (2 * a))
    # Their last point is (d, r_i / (2 (d - max_c))) whenever d != max_c (never equal here).
    along.append(length)
    across.append(last_across / (2 * (length - full)))
    p, q = np.stack(along), np.stack(across)  # (points, N)
    cols = np.cos(theta) * p - np.sin(theta) * q + c_start
    rows = np.sin(theta) * p + np.cos(theta) * q + r0
    total = np.zeros((r0.shape[0], SIZE, SIZE))
    for k in range(1, p.shape[0]):
        total += line_from_points(cols[k - 1], rows[k - 1], cols[k], rows[k])
    return total


def _zigzag(x: Images, rng: np.random.Generator) -> Images:
    n = x.shape[0]
    r0 = rng.integers(0, SIZE - 1, size=n)  # randint(0, 27)
    r1 = r0 + rng.integers(-5, 5, size=n)  # randint(-5, 5)
    # Adding non-negative lines and clipping once equals their clip after every segment.
    return np.clip(x + zigzag_lines(r0, r1), 0, 1)


# =============================================================================================
# Canny edges (skimage 0.14-0.18 `feature.canny` with its defaults)
# =============================================================================================


def _sobel(x: Images, axis: int) -> Images:
    """scipy's sobel along `axis` (1 = rows, 2 = columns), smoothing only the other image axis
    (ndimage.sobel on the 3D stack would also smooth across images)."""
    other = 2 if axis == 1 else 1
    d = ndimage.correlate1d(x, [-1.0, 0.0, 1.0], axis=axis, mode="reflect")
    return ndimage.correlate1d(d, [1.0, 2.0, 1.0], axis=other, mode="reflect")


def canny_edges_images(x: Images) -> np.ndarray:
    """Boolean edge maps (N, 28, 28) of skimage's canny(image) with sigma 1, low 0.1, high 0.2."""
    sigma = (0.0, CANNY_SIGMA_PX, CANNY_SIGMA_PX)
    # Smoothing "with mask" (all pixels valid): divide by the blurred mask so the zero padding
    # outside does not darken the border.
    bleed = ndimage.gaussian_filter(np.ones((1, SIZE, SIZE)), sigma, mode="constant")
    smoothed = ndimage.gaussian_filter(x, sigma, mode="constant") / (bleed + np.finfo(float).eps)
    di = _sobel(smoothed, axis=1)  # their isobel: derivative along rows
    dj = _sobel(smoothed, axis=2)  # their jsobel: derivative along columns
    ai, aj = np.abs(di), np.abs(dj)
    mag = np.hypot(di, dj)
    inner = np.zeros(x.shape[1:], dtype=bool)  # the mask eroded by a 3x3 square
    inner[1:-1, 1:-1] = True

    padded = np.pad(mag, ((0, 0), (1, 1), (1, 1)))

    def at(dr: int, dc: int) -> np.ndarray:
        return padded[:, 1 + dr : 1 + dr + SIZE, 1 + dc : 1 + dc + SIZE]

    same_sign = ((di >= 0) & (dj >= 0)) | ((di <= 0) & (dj <= 0))
    opposite = ((di <= 0) & (dj >= 0)) | ((di >= 0) & (dj <= 0))
    mostly_rows, mostly_cols = ai >= aj, ai <= aj
    with np.errstate(divide="ignore", invalid="ignore"):
        w_rows, w_cols = aj / ai, ai / aj  # nan where both are 0: such points are not maxima
        # The four sectors in skimage's order (a later one overwrites an earlier one on ties):
        # (points, weight, the two neighbours on the + side, the two on the - side).
        sectors = (
            (same_sign & mostly_rows, w_rows, (1, 1), (1, 0), (-1, -1), (-1, 0)),
            (same_sign & mostly_cols, w_cols, (1, 1), (0, 1), (-1, -1), (0, -1)),
            (opposite & mostly_cols, w_cols, (-1, 1), (0, 1), (1, -1), (0, -1)),
            (opposite & mostly_rows, w_rows, (-1, 1), (-1, 0), (1, -1), (1, 0)),
        )
        maxima = np.zeros(x.shape, dtype=bool)
        for points, w, plus2, plus1, minus2, minus1 in sectors:
            plus = at(*plus2) * w + at(*plus1) * (1 - w) <= mag
            minus = at(*minus2) * w + at(*minus1) * (1 - w) <= mag
            sel = points & inner
            maxima[sel] = (plus & minus)[sel]
    high = maxima & (mag >= CANNY_HIGH)
    low = maxima & (mag >= CANNY_LOW)
    # Hysteresis: keep each 8-connected piece of `low` that holds a `high` pixel.
    structure = np.zeros((3, 3, 3), dtype=bool)
    structure[1] = True  # connected within an image, never across images
    labels, count = ndimage.label(low, structure=structure)
    strong = np.bincount(labels.ravel(), weights=high.ravel(), minlength=count + 1) > 0
    strong[0] = False
    return strong[labels]


def _canny_edges(x: Images, rng: np.random.Generator) -> Images:
    return canny_edges_images(x).astype(np.float64)


# =============================================================================================
# The generators by name, in the paper's order (also the authors' CORRUPTIONS list)
# =============================================================================================

GENERATORS: dict[str, Callable[[Images, np.random.Generator], Images]] = {
    "shot_noise": _shot_noise,
    "impulse_noise": _impulse_noise,
    "glass_blur": _glass_blur,
    "motion_blur": _motion_blur,
    "shear": _shear,
    "scale": _scale,
    "rotate": _rotate,
    "brightness": _brightness,
    "translate": _translate,
    "stripe": _stripe,
    "fog": _fog,
    "spatter": _spatter,
    "dotted_line": _dotted_line,
    "zigzag": _zigzag,
    "canny_edges": _canny_edges,
}
