"""Data for vaekit: loaders, the in-memory :class:`Dataset`, transforms and input checks.

Sources: Fashion-MNIST (IDX files, e.g. from Debian's ``dataset-fashion-mnist``),
scikit-learn's 8x8 digits, procedural dSprites-style sprites, ``.npy``/``.npz`` arrays,
image folders and CSV tables;
:func:`load_dataset` picks the right one from a ``--data`` value. Nothing is downloaded,
nothing is cached on disk and nothing is unpickled.

This package imports only torch, numpy, scikit-learn, Pillow and ``vaekit.errors``.
"""

from vaekit.data.arrays import array_to_examples, load_array
from vaekit.data.dataset import Dataset
from vaekit.data.digits import load_digits
from vaekit.data.fashion_mnist import find_fashion_mnist, load_fashion_mnist
from vaekit.data.idx import parse_idx, read_idx
from vaekit.data.image_folder import load_image_folder
from vaekit.data.sources import DATASET_NAMES, has_test_split, load_dataset
from vaekit.data.sprites import Sprites, SpritesDataset, load_sprites
from vaekit.data.streaming import (
    FileDataset,
    batch_loader,
    estimated_memory_bytes,
    fits_in_memory,
    open_file_dataset,
)
from vaekit.data.tables import load_csv
from vaekit.data.transforms import (
    NOISE_TYPES,
    binarize,
    counter_uniform,
    binarize_rows,
    corrupt,
    min_max_scale,
    parse_noise,
    static_binarize,
    train_val_split,
)
from vaekit.data.validation import as_dataset, check_data, check_labels

__all__ = [
    "Dataset",
    # sources
    "has_test_split",
    "load_dataset",
    "load_fashion_mnist",
    "load_digits",
    "load_array",
    "load_image_folder",
    "load_csv",
    "load_sprites",
    "Sprites",
    "SpritesDataset",
    "read_idx",
    "parse_idx",
    "find_fashion_mnist",
    "array_to_examples",
    "DATASET_NAMES",
    # transforms
    "binarize",
    "counter_uniform",
    "binarize_rows",
    "static_binarize",
    "min_max_scale",
    "train_val_split",
    "corrupt",
    "parse_noise",
    "NOISE_TYPES",
    # validation
    "as_dataset",
    "check_data",
    "check_labels",
    # streaming (data larger than memory)
    "FileDataset",
    "open_file_dataset",
    "estimated_memory_bytes",
    "fits_in_memory",
    "batch_loader",
]
