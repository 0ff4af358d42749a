"""Tests for the data layer: IDX parsing, lookup, verification, download, device splits, batches
and augmentation. Everything runs on tiny synthetic files; the real files only under real_data."""

from __future__ import annotations

import dataclasses
import functools
import gzip
import hashlib
import socket
import threading
import time
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import real_data_root
from mnistbench.data import (
    DATASETS,
    DatasetSpec,
    RawDataset,
    background_value,
    batch_indices,
    check_dataset,
    download_dataset,
    get_dataset_spec,
    iterate_batches,
    load_dataset,
    locate_dataset,
    prepare_device_data,
    random_affine,
    read_idx,
    search_dirs,
    verify_file,
)
from mnistbench.data.catalog import ROLES, STANDARD_FILES
from mnistbench.errors import ConfigError, DataError
from synthetic import idx_bytes, write_dataset

TINY = "tiny"
Tiny = tuple[DatasetSpec, dict[str, bytes]]  # the `tiny` fixture: spec and file contents
Mirror = tuple[Path, str, list[str]]  # the `http_mirror` fixture: folder, base URL, request log


# ---------------------------------------------------------------------------------------------
# Helpers and fixtures
# ---------------------------------------------------------------------------------------------


def tiny_contents(seed: int = 0) -> dict[str, bytes]:
    """Decompressed IDX content of a tiny 4-file data set: 30 train and 12 test 6x6 images."""
    rng = np.random.default_rng(seed)
    return {
        "train_images": idx_bytes(rng.integers(0, 256, (30, 6, 6), dtype=np.uint8)),
        "train_labels": idx_bytes(rng.integers(0, 10, 30, dtype=np.uint8)),
        "test_images": idx_bytes(rng.integers(0, 256, (12, 6, 6), dtype=np.uint8)),
        "test_labels": idx_bytes(rng.integers(0, 10, 12, dtype=np.uint8)),
    }


@pytest.fixture
def tiny(monkeypatch: pytest.MonkeyPatch) -> Tiny:
    """Register a fake data set "tiny" whose checksums match `tiny_contents()`."""
    contents = tiny_contents()
    spec = DatasetSpec(
        name=TINY,
        mean=0.5,
        std=0.25,
        class_names=tuple("abcdefghij"),
        files=STANDARD_FILES,
        sha256={role: hashlib.sha256(c).hexdigest() for role, c in contents.items()},
        mirrors=(),
    )
    monkeypatch.setitem(DATASETS, TINY, spec)
    return spec, contents


class _Handler(SimpleHTTPRequestHandler):
    requests: list[str]  # set per server in the fixture

    def log_message(self, format: str, *args: object) -> None:  # keep test output clean
        pass

    def do_GET(self) -> None:
        self.requests.append(self.path)
        super().do_GET()


@pytest.fixture
def http_mirror(tmp_path: Path) -> Iterator[Mirror]:
    """A local HTTP server on 127.0.0.1 serving a temp folder: (folder, base URL, request log)."""
    root = tmp_path / "mirror"
    root.mkdir()
    log: list[str] = []
    handler = type("Handler", (_Handler,), {"requests": log})
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(handler, directory=root))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.daemon = True
    thread.start()
    watchdog = threading.Timer(60, server.shutdown)  # never outlive a hung test
    watchdog.daemon = True
    watchdog.start()
    try:
        yield root, f"http://127.0.0.1:{server.server_address[1]}/", log
    finally:
        watchdog.cancel()
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture
def online_mirror(monkeypatch: pytest.MonkeyPatch, tiny: Tiny, http_mirror: Mirror) -> Mirror:
    """Network allowed (MNISTBENCH_OFFLINE unset) and `http_mirror` serving the tiny files."""
    monkeypatch.delenv("MNISTBENCH_OFFLINE")
    served, _, _ = http_mirror
    write_dataset(served, tiny[1])
    return http_mirror


def dead_mirror() -> str:
    """A 127.0.0.1 URL on a port nothing listens on (connection refused at once)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


def synthetic_raw(n_train: int = 300, n_test: int = 100) -> RawDataset:
    """A RawDataset named "mnist" whose images carry their id in pixels (0,0) and (0,1).

    Train ids are 0..n_train-1, test ids 1000.. so the two can be told apart after scaling.
    Pixel (27, 27) is 0 and (27, 26) is 255 in every image so every scaling hits its range ends.
    """
    rng = np.random.default_rng(1)

    def images(ids: np.ndarray) -> torch.Tensor:
        x = rng.integers(0, 256, (len(ids), 28, 28), dtype=np.uint8)
        x[:, 0, 0], x[:, 0, 1] = ids // 256, ids % 256
        x[:, 27, 27], x[:, 27, 26] = 0, 255
        return torch.from_numpy(x)

    return RawDataset(
        name="mnist",
        train_images=images(np.arange(n_train)),
        train_labels=torch.from_numpy(rng.integers(0, 10, n_train)).long(),
        test_images=images(np.arange(1000, 1000 + n_test)),
        test_labels=torch.from_numpy(rng.integers(0, 10, n_test)).long(),
        source_dir=Path("/nonexistent"),
    )


def ids_of(images: torch.Tensor, mean: float, std: float) -> set[int]:
    """Recover the ids written by `synthetic_raw` from scaled (N, 1, 28, 28) images."""
    raw = torch.round((images[:, 0, 0, :2] * std + mean) * 255).long()
    return set((raw[:, 0] * 256 + raw[:, 1]).tolist())


# ---------------------------------------------------------------------------------------------
# IDX
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("gz", [True, False], ids=["gzip", "raw"])
@pytest.mark.parametrize("shape", [(7,), (5, 4, 3)], ids=["labels", "images"])
def test_read_idx_round_trips(tmp_path: Path, gz: bool, shape: tuple[int, ...]) -> None:
    array = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    content = idx_bytes(array)
    path = tmp_path / "file.idx"
    path.write_bytes(gzip.compress(content) if gz else content)
    tensor = read_idx(path)
    assert tensor.dtype == torch.uint8
    assert tuple(tensor.shape) == shape
    assert np.array_equal(tensor.numpy(), array)


def test_read_idx_detects_gzip_by_content_not_name(tmp_path: Path) -> None:
    array = np.arange(12, dtype=np.uint8).reshape(3, 2, 2)
    looks_gz = tmp_path / "raw-but-named.gz"
    looks_gz.write_bytes(idx_bytes(array))
    looks_raw = tmp_path / "gzip-but-named.idx"
    looks_raw.write_bytes(gzip.compress(idx_bytes(array)))
    assert torch.equal(read_idx(looks_gz), read_idx(looks_raw))


@pytest.mark.parametrize("gz", [True, False], ids=["gzip", "raw"])
def test_read_idx_truncated_file_names_it(tmp_path: Path, gz: bool) -> None:
    content = idx_bytes(np.zeros((10, 4, 4), dtype=np.uint8))
    data = gzip.compress(content) if gz else content
    path = tmp_path / "short-images-idx3-ubyte"
    path.write_bytes(data[: len(data) - 9])
    with pytest.raises(DataError, match="truncated") as info:
        read_idx(path)
    assert str(path) in str(info.value)


def test_read_idx_rejects_non_idx_and_trailing_bytes(tmp_path: Path) -> None:
    path = tmp_path / "not-idx"
    path.write_bytes(b"<html>404</html>")
    with pytest.raises(DataError, match="not an IDX file"):
        read_idx(path)
    path.write_bytes(idx_bytes(np.zeros(3, dtype=np.uint8)) + b"\0")
    with pytest.raises(DataError, match="trailing"):
        read_idx(path)


# ---------------------------------------------------------------------------------------------
# Catalog
# ---------------------------------------------------------------------------------------------


def test_catalog_has_both_datasets_complete() -> None:
    assert set(DATASETS) >= {"mnist", "fashion-mnist"}
    for name, spec in DATASETS.items():
        assert spec.name == name
        assert len(spec.class_names) == spec.num_classes == 10
        assert set(spec.files) == set(spec.sha256) == set(ROLES)
        assert all(len(h) == 64 for h in spec.sha256.values())
        assert spec.mirrors and all(m.endswith("/") for m in spec.mirrors)
    assert (DATASETS["mnist"].mean, DATASETS["mnist"].std) == (0.1307, 0.3081)
    assert (DATASETS["fashion-mnist"].mean, DATASETS["fashion-mnist"].std) == (0.2860, 0.3530)


def test_unknown_dataset_suggests_closest() -> None:
    with pytest.raises(ConfigError, match="fashion-mnist") as info:
        get_dataset_spec("fashion_mnist")
    assert "Did you mean 'fashion-mnist'" in str(info.value)
    assert "mnist" in str(info.value)


# ---------------------------------------------------------------------------------------------
# Lookup, verification and load errors
# ---------------------------------------------------------------------------------------------


def test_search_dirs_order(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    given, env = tmp_path / "given", tmp_path / "env"
    given.mkdir()
    monkeypatch.setenv("MNISTBENCH_DATA", str(env))
    cache = tmp_path / "xdg-cache" / "mnistbench"
    assert search_dirs("fashion-mnist", given) == [
        given / "fashion-mnist",
        given,
        env / "fashion-mnist",
        env,
        cache / "fashion-mnist",
        Path("/usr/share/datasets/fashion-mnist"),
    ]
    assert search_dirs("mnist", None) == [env / "mnist", env, cache / "mnist"]


def test_search_dirs_skips_folder_of_another_dataset(tmp_path: Path) -> None:
    other = tmp_path / "mnist"
    other.mkdir()
    assert other not in search_dirs("fashion-mnist", other)
    assert other in search_dirs("mnist", other)


def test_missing_data_dir_raises_naming_it(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    for call in (search_dirs, locate_dataset, load_dataset, check_dataset):
        with pytest.raises(DataError) as info:
            call("mnist", missing)
        message = str(info.value)
        assert str(missing) in message and "MNISTBENCH_DATA" in message


@pytest.mark.parametrize("gz", [True, False], ids=["gzip", "decompressed"])
@pytest.mark.parametrize("at_root", [True, False], ids=["root", "dataset-folder"])
def test_load_tiny_dataset(tmp_path: Path, tiny: Tiny, gz: bool, at_root: bool) -> None:
    _, contents = tiny
    folder = write_dataset(tmp_path / "data" / TINY, contents, gz=gz)
    data_dir = folder.parent if at_root else folder
    assert locate_dataset(TINY, data_dir) == folder
    raw = load_dataset(TINY, data_dir, download=False)
    assert raw.source_dir == folder
    assert raw.train_images.shape == (30, 6, 6) and raw.train_images.dtype == torch.uint8
    assert raw.test_labels.shape == (12,) and raw.test_labels.dtype == torch.int64
    assert raw.train_images.numpy().tobytes() == contents["train_images"][16:]


def test_env_var_is_searched(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, tiny: Tiny) -> None:
    folder = write_dataset(tmp_path / "env" / TINY, tiny[1])
    monkeypatch.setenv("MNISTBENCH_DATA", str(tmp_path / "env"))
    assert load_dataset(TINY, download=False).source_dir == folder


def test_one_missing_file_is_named(tmp_path: Path, tiny: Tiny) -> None:
    folder = write_dataset(tmp_path / "data" / TINY, tiny[1])
    (folder / "t10k-labels-idx1-ubyte.gz").unlink()
    assert locate_dataset(TINY, tmp_path / "data") is None
    with pytest.raises(DataError) as info:
        load_dataset(TINY, tmp_path / "data", download=False)
    message = str(info.value)
    assert "missing there: t10k-labels-idx1-ubyte.gz" in message
    assert "train-images-idx3-ubyte.gz" not in message.split("missing there:")[1].split(".")[0]
    for searched in search_dirs(TINY, tmp_path / "data"):
        assert str(searched) in message
    assert "--data-dir DIR" in message and "MNISTBENCH_DATA=DIR" in message
    assert "mnistbench data download" in message


def test_nothing_found_offline_names_everything(tmp_path: Path, tiny: Tiny) -> None:
    with pytest.raises(DataError) as info:
        load_dataset(TINY, download=True)  # MNISTBENCH_OFFLINE=1 from the autouse fixture
    message = str(info.value)
    assert all(name in message for name in STANDARD_FILES.values())
    assert str(tmp_path / "xdg-cache" / "mnistbench" / TINY) in message
    assert "MNISTBENCH_OFFLINE" in message and "--data-dir DIR" in message


def test_corrupt_content_reports_both_checksums(tmp_path: Path, tiny: Tiny) -> None:
    spec, contents = tiny
    folder = write_dataset(tmp_path / TINY, contents)
    bad = bytearray(contents["train_images"])
    bad[-1] ^= 0xFF  # still valid IDX, different content
    path = folder / "train-images-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(bytes(bad)))
    actual = hashlib.sha256(bytes(bad)).hexdigest()
    for call in (
        lambda: verify_file(path, spec.sha256["train_images"]),
        lambda: load_dataset(TINY, tmp_path, download=False),
    ):
        with pytest.raises(DataError) as info:
            call()
        message = str(info.value)
        assert spec.sha256["train_images"] in message and actual in message
        assert str(path) in message and "mnistbench data download" in message


def test_verify_file_truncated_gzip(tmp_path: Path, tiny: Tiny) -> None:
    spec, contents = tiny
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(contents["train_images"])[:-12])
    with pytest.raises(DataError, match="truncated or corrupt") as info:
        verify_file(path, spec.sha256["train_images"])
    assert str(path) in str(info.value)


def test_check_dataset_reports_each_file(tmp_path: Path, tiny: Tiny) -> None:
    folder = write_dataset(tmp_path / TINY, tiny[1])
    assert [c.status for c in check_dataset(TINY, tmp_path)] == ["ok"] * 4
    (folder / "train-labels-idx1-ubyte.gz").unlink()
    (folder / "t10k-images-idx3-ubyte.gz").write_bytes(b"\x1f\x8b garbage")
    checks = {c.role: c for c in check_dataset(TINY, tmp_path)}
    assert checks["train_images"].status == "ok"
    assert checks["train_labels"].status == "missing" and checks["train_labels"].path is None
    assert checks["test_images"].status == "corrupt"
    assert checks["test_images"].path == folder / "t10k-images-idx3-ubyte.gz"


# ---------------------------------------------------------------------------------------------
# Download (local HTTP server only)
# ---------------------------------------------------------------------------------------------


def test_download_offline_never_fetches(tmp_path: Path, tiny: Tiny, http_mirror: Mirror) -> None:
    root, base, log = http_mirror
    write_dataset(root, tiny[1])
    with pytest.raises(DataError, match="MNISTBENCH_OFFLINE"):
        download_dataset(TINY, tmp_path / "dl", mirrors=[base], retries=1, timeout_s=2)
    assert log == []


def test_download_falls_back_to_next_mirror(
    tmp_path: Path, tiny: Tiny, online_mirror: Mirror
) -> None:
    spec, _ = tiny
    _, base, log = online_mirror
    folder = download_dataset(
        TINY,
        tmp_path / "dl",
        progress=False,
        mirrors=[dead_mirror(), base],
        retries=2,
        timeout_s=2,
        backoff_s=0,
    )
    assert folder == tmp_path / "dl" / TINY
    assert sorted(p.name for p in folder.iterdir()) == sorted(STANDARD_FILES.values())
    for role in ROLES:
        verify_file(folder / spec.files[role], spec.sha256[role])
    assert len(log) == 4
    download_dataset(TINY, tmp_path / "dl", progress=False, mirrors=[base])
    assert len(log) == 4  # everything intact: nothing fetched again


def test_download_rejects_wrong_bytes(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, tiny: Tiny, http_mirror: Mirror
) -> None:
    monkeypatch.delenv("MNISTBENCH_OFFLINE")
    served, base, log = http_mirror
    write_dataset(served, tiny_contents(seed=99))  # valid files, wrong content
    with pytest.raises(DataError) as info:
        download_dataset(
            TINY,
            tmp_path / "dl",
            progress=False,
            mirrors=[base],
            retries=2,
            timeout_s=2,
            backoff_s=0,
        )
    message = str(info.value)
    assert "train-images-idx3-ubyte.gz" in message and base in message and "SHA-256" in message
    assert list((tmp_path / "dl" / TINY).iterdir()) == []  # nothing in place, no temp files
    assert len(log) == 2  # one request per retry round


def test_download_replaces_corrupt_file(tmp_path: Path, tiny: Tiny, online_mirror: Mirror) -> None:
    spec, contents = tiny
    _, base, log = online_mirror
    folder = write_dataset(tmp_path / "dl" / TINY, contents)
    (folder / "train-labels-idx1-ubyte.gz").write_bytes(b"junk")
    download_dataset(TINY, tmp_path / "dl", progress=False, mirrors=[base], retries=1)
    assert log == ["/train-labels-idx1-ubyte.gz"]
    verify_file(folder / "train-labels-idx1-ubyte.gz", spec.sha256["train_labels"])


def test_load_downloads_into_data_dir(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, tiny: Tiny, online_mirror: Mirror
) -> None:
    spec, _ = tiny
    _, base, _ = online_mirror
    monkeypatch.setitem(DATASETS, TINY, dataclasses.replace(spec, mirrors=(base,)))
    (tmp_path / "data").mkdir()
    raw = load_dataset(TINY, tmp_path / "data", progress=False)
    assert raw.source_dir == tmp_path / "data" / TINY
    assert len(raw.train_labels) == 30


# ---------------------------------------------------------------------------------------------
# Device data
# ---------------------------------------------------------------------------------------------


def test_prepare_device_data_shapes_and_disjoint_splits() -> None:
    raw = synthetic_raw()
    data = prepare_device_data(raw, "cpu", val_size=50, seed=0, scaling="unit")
    assert data.device == torch.device("cpu")
    assert data.train.images.shape == (250, 1, 28, 28) and data.train.images.dtype == torch.float32
    assert data.train.labels.dtype == torch.int64 and len(data.train) == 250
    assert data.val is not None and len(data.val) == 50 and len(data.test) == 100
    assert (data.num_classes, len(data.class_names)) == (10, 10)
    train_ids = ids_of(data.train.images, data.mean, data.std)
    val_ids = ids_of(data.val.images, data.mean, data.std)
    test_ids = ids_of(data.test.images, data.mean, data.std)
    assert test_ids == set(range(1000, 1100))
    assert not val_ids & test_ids and not val_ids & train_ids
    assert val_ids | train_ids == set(range(300))
    # Labels travel with their images.
    val_rows = sorted(val_ids)
    assert torch.equal(data.val.labels, raw.train_labels[val_rows])


def test_val_split_is_seeded() -> None:
    raw = synthetic_raw()

    def val_ids(seed: int) -> set[int]:
        data = prepare_device_data(raw, val_size=40, seed=seed, scaling="unit")
        assert data.val is not None
        return ids_of(data.val.images, data.mean, data.std)

    assert val_ids(0) == val_ids(0)
    assert val_ids(0) != val_ids(1)


@pytest.mark.parametrize(
    ("scaling", "low", "high"),
    [("unit", 0.0, 1.0), ("symmetric", -1.0, 1.0), ("standard", -0.1307 / 0.3081, 0.8693 / 0.3081)],
)
def test_scaling_ranges(scaling: str, low: float, high: float) -> None:
    data = prepare_device_data(synthetic_raw(), val_size=0, scaling=scaling)
    images = data.train.images
    assert images.min().item() == pytest.approx(low, abs=1e-5)
    assert images.max().item() == pytest.approx(high, abs=1e-5)
    assert background_value(data) == pytest.approx(low, abs=1e-5)


def test_prepare_options() -> None:
    raw = synthetic_raw()
    assert prepare_device_data(raw, val_size=0).val is None
    small = prepare_device_data(raw, val_size=20, subset=64)
    assert (len(small.train), len(small.val or []), len(small.test)) == (64, 20, 64)
    assert len(prepare_device_data(raw, val_size=20, subset=500).test) == 100
    for bad in ({"val_size": 300}, {"val_size": -1}, {"scaling": "minmax"}, {"subset": 0}):
        with pytest.raises(ConfigError):
            prepare_device_data(raw, **bad)


# ---------------------------------------------------------------------------------------------
# Batches
# ---------------------------------------------------------------------------------------------


def test_batch_indices_cover_each_index_once_and_are_reproducible() -> None:
    def epoch(seed: int) -> list[torch.Tensor]:
        gen = torch.Generator().manual_seed(seed)
        return list(batch_indices(103, 10, True, gen, "cpu"))

    batches = epoch(0)
    assert [len(b) for b in batches] == [10] * 10 + [3]
    assert sorted(torch.cat(batches).tolist()) == list(range(103))
    assert all(torch.equal(a, b) for a, b in zip(batches, epoch(0), strict=True))
    assert not torch.equal(torch.cat(batches), torch.cat(epoch(1)))
    assert torch.equal(
        torch.cat(list(batch_indices(103, 10, False, None, "cpu"))), torch.arange(103)
    )
    dropped = list(batch_indices(103, 10, True, torch.Generator().manual_seed(0), "cpu", True))
    assert [len(b) for b in dropped] == [10] * 10


def test_iterate_batches_pairs_images_with_labels() -> None:
    data = prepare_device_data(synthetic_raw(), val_size=0, scaling="unit")
    gen = torch.Generator().manual_seed(0)
    seen = 0
    for images, labels in iterate_batches(data.train, 64, True, gen):
        rows = sorted(ids_of(images, data.mean, data.std))
        assert images.shape[1:] == (1, 28, 28) and len(images) == len(labels)
        assert sorted(labels.tolist()) == sorted(data.train.labels[rows].tolist())
        seen += len(labels)
    assert seen == len(data.train)


# ---------------------------------------------------------------------------------------------
# Augmentation
# ---------------------------------------------------------------------------------------------


def test_random_affine_identity() -> None:
    images = torch.rand(8, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    out = random_affine(
        images, torch.Generator().manual_seed(1), degrees=0, translate=0, scale=(1, 1)
    )
    assert out.shape == images.shape
    assert torch.allclose(out, images, atol=1e-5)


def test_random_affine_differs_per_sample_and_is_reproducible() -> None:
    image = torch.zeros(1, 1, 28, 28)
    image[..., 8:20, 10:16] = 1.0
    batch = image.repeat(6, 1, 1, 1)
    out = random_affine(batch, torch.Generator().manual_seed(0), shear_deg=5)
    assert out.shape == batch.shape
    flat = out.flatten(1)
    assert all(not torch.allclose(flat[i], flat[j]) for i in range(6) for j in range(i + 1, 6))
    again = random_affine(batch, torch.Generator().manual_seed(0), shear_deg=5)
    assert torch.equal(out, again)


def test_random_affine_scale_zooms_about_centre() -> None:
    image = torch.zeros(1, 1, 28, 28)
    image[..., 12:16, 12:16] = 1.0  # centred 4x4 block, mass 16
    gen = torch.Generator().manual_seed(0)
    bigger = random_affine(image, gen, degrees=0, translate=0, scale=(2, 2))
    smaller = random_affine(image, gen, degrees=0, translate=0, scale=(0.5, 0.5))
    assert bigger.sum().item() == pytest.approx(64, rel=0.1)
    assert smaller.sum().item() == pytest.approx(4, rel=0.1)


def test_random_affine_fill() -> None:
    fill = -0.4242
    blank = torch.full((4, 1, 28, 28), fill)
    gen = torch.Generator().manual_seed(0)
    out = random_affine(blank, gen, degrees=30, translate=0.3, scale=(0.7, 1.3), fill=fill)
    assert torch.allclose(out, blank, atol=1e-5)
    ones = torch.ones(4, 1, 28, 28)
    shifted = random_affine(ones, gen, degrees=45, translate=0.3, fill=fill)
    assert shifted.min().item() == pytest.approx(fill, abs=1e-5)  # fill comes in, not zero


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_device_paths_on_cuda() -> None:
    data = prepare_device_data(synthetic_raw(), "cuda", val_size=50)
    assert data.device.type == "cuda" and data.test.labels.device.type == "cuda"
    cpu_gen = torch.Generator().manual_seed(0)
    idx = torch.cat(list(batch_indices(len(data.train), 64, True, cpu_gen, data.device)))
    assert idx.device.type == "cuda" and sorted(idx.tolist()) == list(range(len(data.train)))
    cuda_gen = torch.Generator(device="cuda").manual_seed(0)
    images, _ = next(iterate_batches(data.train, 32, True, cuda_gen))
    out = random_affine(images, cuda_gen, fill=background_value(data))
    assert out.shape == images.shape and out.device == images.device


# ---------------------------------------------------------------------------------------------
# Real data (MNISTBENCH_DATA)
# ---------------------------------------------------------------------------------------------


@pytest.mark.real_data
@pytest.mark.parametrize("name", ["mnist", "fashion-mnist"])
def test_real_dataset_loads(name: str, record_property: pytest.RecordProperty) -> None:
    root = real_data_root(name)
    start = time.perf_counter()
    raw = load_dataset(name, root, download=False)  # verifies every checksum
    record_property("load_seconds", round(time.perf_counter() - start, 3))
    assert raw.source_dir == root / name
    assert raw.train_images.shape == (60000, 28, 28) and raw.train_images.dtype == torch.uint8
    assert raw.test_images.shape == (10000, 28, 28) and raw.test_images.dtype == torch.uint8
    for labels, n in ((raw.train_labels, 60000), (raw.test_labels, 10000)):
        assert labels.shape == (n,) and labels.dtype == torch.int64
        assert labels.min().item() == 0 and labels.max().item() == 9
    assert [c.status for c in check_dataset(name, root)] == ["ok"] * 4
    data = prepare_device_data(raw, subset=1000)
    assert data.train.images.shape == (1000, 1, 28, 28) and len(data.val or []) == 5000


def test_resize_data_once_or_per_batch() -> None:
    from mnistbench.data import DeviceData, Split, resize_data

    images = torch.rand(6, 1, 28, 28)
    labels = torch.arange(6)
    split = Split(images, labels)
    data = DeviceData("mnist", split, None, Split(images[:2], labels[:2]), 0.0, 1.0, 10, ())
    once = resize_data(data, 64)
    assert once.train.images.shape == (6, 1, 64, 64) and once.train.resize_to is None
    lazy = resize_data(data, 64, budget_bytes=1)
    assert lazy.train.images.shape == (6, 1, 28, 28) and lazy.train.resize_to == 64
    batch, _ = next(iterate_batches(lazy.train, 4, shuffle=False, generator=None))
    assert batch.shape == (4, 1, 64, 64)
    assert torch.allclose(batch, once.train.images[:4])
