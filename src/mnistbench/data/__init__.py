"""Data layer: find, verify and load MNIST-style IDX data sets, and serve them from the device."""

from mnistbench.data.augment import augment_batch, simsiam_view
from mnistbench.data.catalog import DATASETS, DatasetSpec, get_dataset_spec
from mnistbench.data.device import (
    DeviceData,
    Split,
    background_value,
    batch_indices,
    iterate_batches,
    prepare_device_data,
    random_affine,
    resize_data,
    resize_images,
)
from mnistbench.data.download import download_dataset
from mnistbench.data.fetch import FileCheck, RawDataset, check_dataset, load_dataset
from mnistbench.data.idx import read_idx
from mnistbench.data.locate import locate_dataset, search_dirs, verify_file
from mnistbench.data.sealed import SealedSplit, seal_test

__all__ = [
    "DATASETS",
    "DatasetSpec",
    "DeviceData",
    "FileCheck",
    "RawDataset",
    "SealedSplit",
    "Split",
    "augment_batch",
    "background_value",
    "batch_indices",
    "check_dataset",
    "download_dataset",
    "get_dataset_spec",
    "iterate_batches",
    "load_dataset",
    "locate_dataset",
    "prepare_device_data",
    "random_affine",
    "read_idx",
    "resize_data",
    "resize_images",
    "seal_test",
    "search_dirs",
    "simsiam_view",
    "verify_file",
]
