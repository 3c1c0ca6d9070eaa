"""Datasets: CIFAR-10 from its official files (safely), and scikit-learn's embedded digits."""

from handgrad.data.dataset import (
    DATASETS,
    DEFAULT_CLASSES,
    IMAGE_SHAPES,
    Dataset,
    Split,
    load_dataset,
    resolve_classes,
    stratified_split,
)
from handgrad.data.download import DownloadError, download_cifar10

__all__ = [
    "DATASETS",
    "DEFAULT_CLASSES",
    "Dataset",
    "DownloadError",
    "IMAGE_SHAPES",
    "Split",
    "download_cifar10",
    "load_dataset",
    "resolve_classes",
    "stratified_split",
]
