from __future__ import annotations

import hashlib
import io
import os
import pickle
import subprocess
import sys
import tarfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
import torch

from handgrad.data import DownloadError, download_cifar10, load_dataset, stratified_split
from handgrad.data.cifar10 import read_batch, read_meta
from handgrad.data.safe_pickle import load_pickle

NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


# ---- real images -------------------------------------------------------------------------

@pytest.fixture(scope="module")
def cifar(cifar_root):
    return load_dataset("cifar10", root=cifar_root, val_fraction=0.1, seed=0)


def test_real_cifar_loads_the_requested_classes(cifar, cifar_root):
    assert cifar.class_names == ("airplane", "automobile")
    assert (len(cifar.train), len(cifar.val), len(cifar.test)) == (9000, 1000, 2000)
    assert cifar.train.x.dtype == torch.uint8 and cifar.train.x.shape[1] == 3072
    assert read_meta(cifar_root) == NAMES


def test_relabelling_follows_the_order_given(cifar_root, cifar):
    flipped = load_dataset("cifar10", root=cifar_root, classes=["automobile", "0"], seed=0)
    assert flipped.class_names == ("automobile", "airplane")
    assert torch.equal(flipped.test.x, cifar.test.x)
    assert torch.equal(flipped.test.y, 1 - cifar.test.y)
    raw, labels = read_batch(cifar_root / "cifar-10-batches-py" / "test_batch")
    assert torch.equal(cifar.test.y, torch.from_numpy(labels))  # airplane=0, automobile=1


def test_split_is_stratified_disjoint_and_seeded(cifar, cifar_root):
    assert torch.bincount(cifar.val.y).tolist() == [500, 500]
    assert torch.bincount(cifar.train.y).tolist() == [4500, 4500]
    labels = torch.cat([cifar.train.y, cifar.val.y])
    train_idx, val_idx = stratified_split(labels, 0.1, seed=0)
    assert not set(train_idx.tolist()) & set(val_idx.tolist())
    assert sorted(train_idx.tolist() + val_idx.tolist()) == list(range(10_000))
    whole = torch.cat([cifar.train.x, cifar.val.x]).double().sum(0)  # same images, re-split
    _, raw_labels = read_batch(cifar_root / "cifar-10-batches-py" / "data_batch_1")
    assert len(raw_labels) == 2000 and whole.shape == (3072,)
    again = load_dataset("cifar10", root=cifar_root, val_fraction=0.1, seed=0)
    other = load_dataset("cifar10", root=cifar_root, val_fraction=0.1, seed=1)
    assert torch.equal(again.val.x, cifar.val.x) and not torch.equal(other.val.x, cifar.val.x)


def test_scaling_and_standardisation_use_training_statistics(cifar_root, cifar):
    x = cifar.inputs(cifar.train.x[:10])
    assert torch.equal(x, cifar.train.x[:10].float() / 255)
    std = load_dataset("cifar10", root=cifar_root, standardize=True, seed=0)
    planes = std.train.x.reshape(-1, 3, 1024).double() / 255
    assert torch.allclose(std.mean[::1024], planes.mean(dim=(0, 2)))
    z = std.inputs(std.train.x, torch.float64).reshape(-1, 3, 1024)
    assert torch.allclose(z.mean(dim=(0, 2)), torch.zeros(3, dtype=torch.float64), atol=1e-9)
    assert torch.allclose(z.std(dim=(0, 2)), torch.ones(3, dtype=torch.float64), atol=1e-6)
    val_mean = std.inputs(std.val.x, torch.float64).reshape(-1, 3, 1024).mean(dim=(0, 2))
    assert not torch.allclose(val_mean, torch.zeros(3, dtype=torch.float64), atol=1e-9)


def test_batches_are_deterministic_and_cover_the_split(cifar):
    def order(seed):
        gen = torch.Generator().manual_seed(seed)
        return [y for _, y in cifar.batches(cifar.val, 64, gen)]
    a, b, c = order(3), order(3), order(4)
    assert all(torch.equal(p, q) for p, q in zip(a, b, strict=True))
    assert not all(torch.equal(p, q) for p, q in zip(a, c, strict=True))
    assert [len(y) for y in a] == [64] * 15 + [40]
    assert sorted(torch.cat(a).tolist()) == sorted(cifar.val.y.tolist())


def test_digits_is_the_embedded_default():
    d = load_dataset("digits", seed=0)
    assert d.class_names == ("3", "8") and d.D == 64
    assert len(d.train) + len(d.val) + len(d.test) == 357  # 183 threes + 174 eights
    x, _ = next(d.batches(d.train, 500))
    assert x.min() >= 0.0 and x.max() == 1.0


@pytest.mark.parametrize("classes,message", [
    (["airplane", "cats"], r"unknown class 'cats' for cifar10; choose from: airplane, automobile"),
    (["airplane", "airplane"], "class 'airplane' given twice"),
    (["airplane"], "need at least two classes, got 1"),
    (["0", "10"], "unknown class '10'"),
])
def test_bad_class_lists_are_named(cifar_root, classes, message):
    with pytest.raises(ValueError, match=message):
        load_dataset("cifar10", root=cifar_root, classes=classes)


def test_missing_folder_says_where_and_how(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"cifar-10-batches-py.*set download"):
        load_dataset("cifar10", root=tmp_path / "nowhere")


# ---- error paths with tiny files ---------------------------------------------------------

def _batch(n=4, dtype=np.uint8, labels=None, **extra):
    return {"data": np.zeros((n, 3072), dtype=dtype),
            "labels": labels if labels is not None else [0, 1] * (n // 2), **extra}


def _write_root(tmp_path: Path, train=None, test=None) -> Path:
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for i in range(1, 6):
        (folder / f"data_batch_{i}").write_bytes(pickle.dumps(train or _batch(), protocol=2))
    (folder / "test_batch").write_bytes(pickle.dumps(test or _batch(), protocol=2))
    (folder / "batches.meta").write_bytes(pickle.dumps({"label_names": NAMES}, protocol=2))
    return tmp_path


def test_tiny_official_layout_loads(tmp_path):
    d = load_dataset("cifar10", root=_write_root(tmp_path), val_fraction=0.0)
    assert len(d.train) == 20 and len(d.test) == 4


def test_missing_file_is_named(tmp_path):
    root = _write_root(tmp_path)
    (root / "cifar-10-batches-py" / "data_batch_3").unlink()
    with pytest.raises(FileNotFoundError, match="data_batch_3"):
        load_dataset("cifar10", root=root)


def test_truncated_file_is_named(tmp_path):
    root = _write_root(tmp_path)
    path = root / "cifar-10-batches-py" / "test_batch"
    path.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(ValueError, match=r"test_batch: truncated or corrupt"):
        load_dataset("cifar10", root=root)


@pytest.mark.parametrize("batch,message", [
    ({"pixels": np.zeros((2, 3072), np.uint8), "labels": [0, 1]}, "keys 'data' and 'labels'"),
    (_batch(dtype=np.float32), r"'data' must be uint8 of shape \(N, 3072\), got float32"),
    (_batch(labels=[0, 1, 12, 0]), "label 12 out of range 0..9"),
    (_batch(labels=[0, 1]), "2 labels for 4 images"),
])
def test_bad_structure_is_named(tmp_path, batch, message):
    root = _write_root(tmp_path, train=batch)
    with pytest.raises(ValueError, match=f"data_batch_1: .*{message}"):
        load_dataset("cifar10", root=root)


@pytest.mark.parametrize("names", [[b"a"] * 10, ["a", "a", *NAMES[2:]], ["", *NAMES[1:]]])
def test_class_names_must_be_distinct(tmp_path, names):
    root = _write_root(tmp_path)
    meta = root / "cifar-10-batches-py" / "batches.meta"
    meta.write_bytes(pickle.dumps({"label_names": names}, protocol=2))
    with pytest.raises(ValueError, match="batches.meta: 'label_names' must be 10 distinct"):
        load_dataset("cifar10", root=root)


class _Exploit:
    def __init__(self, target):
        self.target = target

    def __reduce__(self):
        return (os.system, (f"touch {self.target}",))


def test_malicious_pickle_is_refused_and_runs_nothing(tmp_path):
    marker = tmp_path / "pwned"
    root = _write_root(tmp_path / "root")
    bad = {"data": np.zeros((2, 3072), np.uint8), "labels": [0, 1], "x": _Exploit(marker)}
    (root / "cifar-10-batches-py" / "data_batch_2").write_bytes(pickle.dumps(bad, protocol=2))
    # the payload is real: plain pickle.load would create the file
    with pytest.raises(ValueError, match=r"data_batch_2: refused to load (posix|os)\.system"):
        load_dataset("cifar10", root=root)
    assert not marker.exists()


def test_numpy_core_names_load_without_deprecation_noise(tmp_path, cifar_root, recwarn):
    load_pickle(cifar_root / "cifar-10-batches-py" / "data_batch_1")
    assert not [w for w in recwarn if "numpy.core" in str(w.message)]


def test_stratified_split_rejects_bad_fraction():
    with pytest.raises(ValueError, match="val_fraction must be in"):
        stratified_split(torch.tensor([0, 1]), 1.5, 0)


# ---- download from a real local server ---------------------------------------------------

def _archive(tmp_path: Path) -> bytes:
    root = _write_root(tmp_path / "src")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        tar.add(root / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    return buf.getvalue()


@pytest.fixture
def server():
    """A real HTTP server on 127.0.0.1 serving `state["body"]`, optionally cut short."""
    state = {"body": b"", "cut": False, "requests": 0, "status": 200, "drip": 0.0,
             "length": None}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            state["requests"] += 1
            body = state["body"]
            self.send_response(state["status"])
            self.send_header("Content-Length", str(state["length"] or len(body)))
            self.end_headers()
            if state["drip"]:  # one byte every `drip` seconds
                for i in range(len(body)):
                    try:
                        self.wfile.write(body[i:i + 1])
                        self.wfile.flush()
                    except OSError:  # the client has gone
                        return
                    time.sleep(state["drip"])
                return
            self.wfile.write(body[: len(body) // 2] if state["cut"] else body)
            if state["cut"]:
                self.wfile.flush()
                self.close_connection = True

        def log_message(self, *args):
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    state["url"] = f"http://127.0.0.1:{httpd.server_address[1]}/cifar-10-python.tar.gz"
    yield state
    httpd.shutdown()


def test_good_archive_installs(tmp_path, server):
    server["body"] = _archive(tmp_path)
    md5 = hashlib.md5(server["body"]).hexdigest()
    root = tmp_path / "data"
    download_cifar10(root, url=server["url"], md5=md5, progress=False)
    assert load_dataset("cifar10", root=root, val_fraction=0.0).train.x.shape == (20, 3072)
    assert sorted(p.name for p in root.iterdir()) == ["cifar-10-batches-py"]


def test_mirror_from_the_environment(tmp_path, server, monkeypatch):
    server["body"] = _archive(tmp_path)
    monkeypatch.setenv("HANDGRAD_CIFAR10_URL", server["url"])
    root = tmp_path / "data"
    download_cifar10(root, md5=hashlib.md5(server["body"]).hexdigest(), progress=False)
    assert server["requests"] == 1 and (root / "cifar-10-batches-py" / "test_batch").exists()


def test_wrong_md5_is_refused_and_leaves_nothing(tmp_path, server):
    server["body"] = _archive(tmp_path)
    root = tmp_path / "data"
    with pytest.raises(DownloadError, match="md5 mismatch"):
        download_cifar10(root, url=server["url"], progress=False)  # the official md5
    assert list(root.iterdir()) == []


def test_dropped_connection_is_retried_then_reported(tmp_path, server):
    server["body"], server["cut"] = _archive(tmp_path), True
    root = tmp_path / "data"
    with pytest.raises(DownloadError, match="failed after 3 attempts"):
        download_cifar10(root, url=server["url"], md5="0" * 32, retries=3, progress=False)
    assert server["requests"] == 3
    assert list(root.iterdir()) == []


def test_unsafe_archive_member_is_not_extracted(tmp_path, server):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        info = tarfile.TarInfo("../escape.txt")
        info.size = 2
        tar.addfile(info, io.BytesIO(b"hi"))
    server["body"] = buf.getvalue()
    root = tmp_path / "data"
    with pytest.raises(DownloadError, match="cannot extract"):
        download_cifar10(root, url=server["url"], md5=hashlib.md5(buf.getvalue()).hexdigest(),
                         progress=False)
    assert not (tmp_path / "escape.txt").exists() and list(root.iterdir()) == []


def test_a_404_is_not_retried(tmp_path, server):
    server["status"], server["body"] = 404, b"not here"
    root = tmp_path / "data"
    with pytest.raises(DownloadError, match="404"):
        download_cifar10(root, url=server["url"], md5="0" * 32, retries=3, progress=False)
    assert server["requests"] == 1 and list(root.iterdir()) == []


def test_a_server_error_is_retried(tmp_path, server):
    server["status"], server["body"] = 503, b"busy"
    with pytest.raises(DownloadError, match="failed after 2 attempts"):
        download_cifar10(tmp_path / "data", url=server["url"], retries=2, progress=False)
    assert server["requests"] == 2


def test_a_dripping_mirror_ends_at_the_deadline(tmp_path, server, monkeypatch):
    server["body"], server["drip"] = b"x" * 1000, 0.2
    monkeypatch.setenv("HANDGRAD_DOWNLOAD_DEADLINE", "1.5")
    root = tmp_path / "data"
    start = time.monotonic()
    with pytest.raises(DownloadError, match=r"did not finish within 1.5 s.*DEADLINE"):
        download_cifar10(root, url=server["url"], md5="0" * 32, progress=False)
    assert time.monotonic() - start < 5
    assert list(root.iterdir()) == []


def test_a_bad_deadline_is_named(tmp_path, monkeypatch):
    monkeypatch.setenv("HANDGRAD_DOWNLOAD_DEADLINE", "soon")
    with pytest.raises(ValueError, match="HANDGRAD_DOWNLOAD_DEADLINE must be .* got 'soon'"):
        download_cifar10(tmp_path, url="http://127.0.0.1:9/x", progress=False)


def test_sigterm_mid_download_leaves_no_partial_archive(tmp_path, server):
    server["body"], server["drip"] = b"x" * 100_000, 0.01
    root = tmp_path / "data"
    code = ("import sys; from handgrad.data import download_cifar10; "
            f"download_cifar10({str(root)!r}, url={server['url']!r}, progress=False)")
    proc = subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while not list(root.glob(".cifar10-download-*/*.tar.gz")):
        assert time.monotonic() < deadline and proc.poll() is None, "no download started"
        time.sleep(0.05)
    time.sleep(0.5)  # bytes arriving
    proc.terminate()
    assert proc.wait(timeout=30) == 143
    assert b"Traceback" not in proc.stderr.read()
    assert list(root.iterdir()) == []


def test_folders_of_killed_downloads_are_removed_by_the_next(tmp_path, server):
    server["body"] = _archive(tmp_path)
    root = tmp_path / "data"
    dead = root / ".cifar10-download-999999999-x"
    alive = root / f".cifar10-download-{os.getpid()}-y"
    for folder in (dead, alive):
        folder.mkdir(parents=True)
        (folder / "cifar-10-python.tar.gz").write_bytes(b"partial")
    download_cifar10(root, url=server["url"], md5=hashlib.md5(server["body"]).hexdigest(),
                     progress=False)
    assert not dead.exists() and alive.exists()  # another process may still be downloading


@pytest.mark.parametrize("command", ["train", "compare", "sweep", "reproduce"])
@pytest.mark.parametrize("quiet", [True, False])
def test_quiet_hides_the_download_bar(tmp_path, server, monkeypatch, capsys, quiet, command):
    from handgrad.cli.main import main

    server["body"] = _archive(tmp_path)
    monkeypatch.setenv("HANDGRAD_CIFAR10_URL", server["url"])
    argv = [command, "--download", "--data-dir", str(tmp_path / "data"), "--out",
            str(tmp_path / "r"), *(["--quiet"] if quiet else [])]
    assert main(argv) == 2  # the tiny archive is not the official one
    err = capsys.readouterr().err
    assert "md5 mismatch" in err and ("cifar-10:" not in err) == quiet
    assert not (tmp_path / "r").exists()


def test_a_failed_download_leaves_no_empty_data_dir(tmp_path, server, monkeypatch, capsys):
    from handgrad.cli.main import main

    server["status"], server["body"] = 404, b"not here"
    monkeypatch.setenv("HANDGRAD_CIFAR10_URL", server["url"])
    existing = tmp_path / "kept"
    existing.mkdir()
    for data_dir in (tmp_path / "new" / "data", existing):
        argv = ["train", "--download", "--data-dir", str(data_dir), "--out", str(tmp_path / "r")]
        assert main([*argv, "--quiet"]) == 2
        assert "404" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kept"]
    assert list(existing.iterdir()) == []


# ---- hostile batch files -----------------------------------------------------------------

def test_a_tiny_pickle_announcing_a_huge_object_is_refused_without_allocating(tmp_path):
    path = tmp_path / "bomb"
    path.write_bytes(b"\x80\x04\x8e" + (1 << 40).to_bytes(8, "little") + b"abc.")
    assert path.stat().st_size == 15
    with pytest.raises(ValueError, match=r"bomb: .*BINBYTES8 announces 1099511627776 bytes"):
        load_pickle(path)


@pytest.mark.parametrize("value", [
    np.array([1, None], dtype=object),                   # numpy would build it from any list
    np.zeros(2, dtype=[("a", "i4")]),                     # structured dtype
])
def test_non_numeric_arrays_are_refused(tmp_path, value):
    path = tmp_path / "p"
    path.write_bytes(pickle.dumps({"data": value, "labels": [0]}, protocol=2))
    with pytest.raises(ValueError, match="refused dtype"):
        load_pickle(path)


def test_an_object_array_with_a_short_list_is_refused_not_crashed(tmp_path):
    """numpy's own __setstate__ segfaults on this; the builder never calls it."""
    payload = pickle.dumps(np.zeros(3, dtype=object), protocol=2)
    payload = payload.replace(b"K\x03\x85", b"J@B\x0f\x00\x85")  # shape (10**6,)
    payload = payload.replace(b"](K\x00K\x00K\x00e", b"]")    # and no items
    path = tmp_path / "p"
    path.write_bytes(payload)
    with pytest.raises(ValueError, match="refused"):
        load_pickle(path)


@pytest.mark.parametrize("labels,message", [
    ([0, 1, 10**30, 0], "label 1000000000000000000000000000000 out of range 0..9"),
    ([0, 1.5, 1, 0], "'labels' must be a list of integers"),
    ([0, True, 1, 0], "'labels' must be a list of integers"),
    (np.array([0, 1, 2**40, 0], dtype=np.int64), "label 1099511627776 out of range"),
    ("0110", "'labels' must be a list of integers"),
])
def test_labels_must_be_small_integers(tmp_path, labels, message):
    root = _write_root(tmp_path, train=_batch(labels=labels))
    with pytest.raises(ValueError, match=f"data_batch_1: {message}"):
        load_dataset("cifar10", root=root)


def test_a_class_missing_from_the_files_is_named(tmp_path):
    root = _write_root(tmp_path)  # only airplanes (0) and automobiles (1)
    with pytest.raises(ValueError, match="class 'bird' has no images in the training files"):
        load_dataset("cifar10", root=root, classes=["airplane", "bird"])


def test_an_announced_huge_archive_is_refused_at_once(tmp_path, server):
    server["body"], server["length"] = b"x" * 100, 10 << 40  # 10 TiB announced
    root = tmp_path / "data"
    with pytest.raises(DownloadError, match="announces 10995116277760 bytes"):
        download_cifar10(root, url=server["url"], md5="0" * 32, retries=3, progress=False)
    assert server["requests"] == 1 and list(root.iterdir()) == []
