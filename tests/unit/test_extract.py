"""Feature extraction: shapes, order, batch-size invariance, and the two resize paths."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from zoorank.data import LabelledImages, load_dataset
from zoorank.data.base import ArraySource
from zoorank.compute.extract import extract_features, iter_feature_batches, to_model_input


class TinyBackbone(nn.Module):
    """Stand-in for ``zoorank.zoo.Backbone``: [0, 1] RGB at ``config.input_size`` in,
    ``(B, 8)`` features and ``(B, 5)`` source probabilities out."""

    def __init__(self, input_size=(16, 16)):
        super().__init__()
        self.config = SimpleNamespace(input_size=input_size, feature_dim=8)
        g = torch.Generator().manual_seed(0)
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.head = nn.Linear(8, 5)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=g) * 0.5)
        self.seen = []

    def forward(self, x):
        assert x.dtype == torch.float32 or torch.is_autocast_enabled() or torch.is_autocast_cpu_enabled()
        assert tuple(x.shape[1:]) == (3, *self.config.input_size)
        assert float(x.min()) >= 0.0 and float(x.max()) <= 1.0
        self.seen.append(x.shape[0])
        h = torch.relu(self.conv(x))
        return torch.cat([h.mean(dim=(2, 3)), h.amax(dim=(2, 3))], dim=1)

    def forward_with_outputs(self, x):
        f = self.forward(x)
        return f, torch.softmax(self.head(f), dim=1)


class InputEcho(nn.Module):
    """Features = the model input itself, to check what the extractor feeds."""

    def __init__(self, input_size):
        super().__init__()
        self.config = SimpleNamespace(input_size=input_size, feature_dim=3 * input_size[0] * input_size[1])

    def forward(self, x):
        return x.reshape(x.shape[0], -1)


class NoOutputs(nn.Module):
    def __init__(self):
        super().__init__()
        self.config = SimpleNamespace(input_size=(8, 8), feature_dim=3)

    def forward(self, x):
        return x.mean(dim=(2, 3))


def _smooth_images(n, h, w, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        small = rng.integers(0, 256, (max(2, h // 4), max(2, w // 4), 3), dtype=np.uint8)
        out.append(np.asarray(Image.fromarray(small).resize((w, h), Image.BILINEAR)))
    return np.stack(out)


def _toy(n=23, h=12, w=12, grey=False, seed=0):
    imgs = _smooth_images(n, h, w, seed)
    if grey:
        imgs = imgs[..., 0].copy()
    labels = np.arange(n) % 3
    return LabelledImages("toy", ["a", "b", "c"], labels, ArraySource(imgs, "toy"))


def _reference_features(model, ds):
    """Per image, no DataLoader: uint8 -> float/255 -> antialiased bilinear -> forward."""
    feats, probs = [], []
    with torch.no_grad():
        for i in range(len(ds)):
            x = torch.from_numpy(ds.image(i)).permute(2, 0, 1)[None].float() / 255.0
            x = F.interpolate(x, size=model.config.input_size, mode="bilinear", antialias=True, align_corners=False)
            f, p = model.forward_with_outputs(x)
            feats.append(f[0].numpy())
            probs.append(p[0].numpy())
    return np.stack(feats), np.stack(probs)


def test_shapes_dtypes_and_dataset_order():
    ds = _toy()
    model = TinyBackbone()
    res = extract_features(model, ds, batch_size=5)
    assert res.features.shape == (23, 8) and res.features.dtype == np.float32
    assert res.source_probs.shape == (23, 5) and res.source_probs.dtype == np.float32
    np.testing.assert_allclose(res.source_probs.sum(axis=1), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(res.labels, ds.labels)
    assert res.labels.dtype == np.int64
    ref_f, ref_p = _reference_features(model, ds)
    np.testing.assert_allclose(res.features, ref_f, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(res.source_probs, ref_p, rtol=1e-5, atol=1e-6)
    assert model.seen[:5] == [5, 5, 5, 5, 3]
    # deterministic: a second run gives the same bits
    again = extract_features(model, ds, batch_size=5)
    np.testing.assert_array_equal(again.features, res.features)


def test_batch_size_does_not_change_results():
    ds = _toy(grey=True)
    model = TinyBackbone()
    one = extract_features(model, ds, batch_size=1)
    seven = extract_features(model, ds, batch_size=7)
    big = extract_features(model, ds, batch_size=64)
    np.testing.assert_allclose(one.features, seven.features, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(one.features, big.features, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(one.source_probs, seven.source_probs, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("size", [(28, 28), (8, 8), (20, 12)])
def test_device_resize_matches_pil_reference(size):
    """Uniform-size datasets are resized on the device; PIL is the reference (1 grey level)."""
    ds = _toy(n=9, h=17, w=17)
    res = extract_features(InputEcho(size), ds, batch_size=4)
    got = res.features.reshape(9, 3, *size).transpose(0, 2, 3, 1) * 255.0
    for i in range(9):
        ref = np.asarray(Image.fromarray(ds.image(i)).resize((size[1], size[0]), Image.BILINEAR), np.float32)
        assert np.abs(got[i] - ref).max() <= 1.0 + 1e-3
        assert np.abs(got[i] - ref).mean() < 0.5


def test_variable_size_images_are_resized_on_cpu_with_pil(tmp_path):
    for c in ("a", "b"):
        (tmp_path / c).mkdir()
        for i, (w, h) in enumerate([(30, 20), (9, 14), (16, 16)]):
            Image.fromarray(_smooth_images(1, h, w, seed=i + ord(c))[0]).save(tmp_path / c / f"{i}.png")
    ds = load_dataset(f"imagefolder:{tmp_path}")
    assert ds.image_size is None
    one = extract_features(InputEcho((16, 16)), ds, batch_size=1)
    four = extract_features(InputEcho((16, 16)), ds, batch_size=4)
    np.testing.assert_array_equal(one.features, four.features)
    got = one.features.reshape(len(ds), 3, 16, 16).transpose(0, 2, 3, 1)
    for i in range(len(ds)):
        ref = np.asarray(Image.fromarray(ds.image(i)).resize((16, 16), Image.BILINEAR), np.float32) / 255.0
        np.testing.assert_allclose(got[i], ref, atol=1e-6)


def test_to_model_input_layout_and_range():
    u8 = torch.randint(0, 256, (2, 5, 7, 3), dtype=torch.uint8)
    x = to_model_input(u8, (5, 7))
    assert x.shape == (2, 3, 5, 7) and x.dtype == torch.float32 and x.is_contiguous()
    torch.testing.assert_close(x, u8.permute(0, 3, 1, 2).float() / 255)
    cl = to_model_input(u8, (10, 14), channels_last=True)
    assert cl.is_contiguous(memory_format=torch.channels_last)
    assert to_model_input(u8[:0], (10, 14)).shape == (0, 3, 10, 14)
    # shrinking is antialiased: 1-pixel stripes average out instead of aliasing to 0 or 1
    stripes = torch.zeros((1, 8, 8, 3), dtype=torch.uint8)
    stripes[:, :, ::2] = 255
    small = to_model_input(stripes, (8, 2))
    assert float(small.min()) > 0.4 and float(small.max()) < 0.6


def test_outputs_optional():
    ds = _toy(n=6)
    assert extract_features(TinyBackbone(), ds, with_outputs=False).source_probs is None
    res = extract_features(NoOutputs(), ds)
    assert res.source_probs is None and res.features.shape == (6, 3)


def test_iter_feature_batches_progress_and_training_flag():
    ds = _toy(n=10)
    model = TinyBackbone()
    model.train()
    calls = []
    chunks = list(iter_feature_batches(model, ds, batch_size=4, progress=lambda d, t: calls.append((d, t))))
    assert [(c.start, c.stop) for c in chunks] == [(0, 4), (4, 8), (8, 10)]
    assert calls == [(4, 10), (8, 10), (10, 10)]
    assert model.training  # restored after extraction (eval mode during it)
    full = extract_features(model, ds, batch_size=3)
    np.testing.assert_allclose(np.concatenate([c.features for c in chunks]), full.features, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(np.concatenate([c.labels for c in chunks]), ds.labels)


def test_workers_channels_last_and_autocast_agree():
    ds = _toy(n=12)
    model = TinyBackbone()
    base = extract_features(model, ds, batch_size=5)
    workers = extract_features(model, ds, batch_size=5, num_workers=2)
    np.testing.assert_array_equal(workers.features, base.features)
    cl = extract_features(model, ds, batch_size=5, channels_last=True)
    np.testing.assert_allclose(cl.features, base.features, rtol=1e-4, atol=1e-5)
    amp = extract_features(model, ds, batch_size=5, autocast=True)
    assert amp.features.dtype == np.float32
    np.testing.assert_allclose(amp.features, base.features, rtol=0.05, atol=0.05)


def test_empty_dataset_and_bad_arguments():
    ds = _toy(n=4).subset([])
    res = extract_features(TinyBackbone(), ds)
    assert res.features.shape == (0, 8) and res.labels.shape == (0,)
    with pytest.raises(ValueError, match="batch_size"):
        extract_features(TinyBackbone(), _toy(n=2), batch_size=0)


def test_real_digit_cnn_on_digits():
    """A zoo backbone end to end (the zoo's cnn_mnist: 28x28 input, tiny)."""
    zoo = pytest.importorskip("zoorank.zoo")
    try:
        model = zoo.load_model("cnn_mnist")
    except Exception as exc:  # weights package missing on this machine
        pytest.skip(f"cnn_mnist unavailable: {exc}")
    ds = load_dataset("digits", max_per_class=2)
    a = extract_features(model, ds, batch_size=1)
    b = extract_features(model, ds, batch_size=7)
    assert a.features.shape == (20, model.config.feature_dim)
    np.testing.assert_allclose(a.features, b.features, rtol=1e-4, atol=1e-5)
    assert np.isfinite(a.features).all()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_matches_cpu():
    ds = _toy(n=20, h=24, w=24)
    model = TinyBackbone(input_size=(32, 32))
    cpu = extract_features(model, ds, batch_size=6)
    gpu = extract_features(model, ds, batch_size=6, device="cuda", num_workers=2)
    np.testing.assert_allclose(gpu.features, cpu.features, rtol=1e-3, atol=1e-4)
    echo_cpu = extract_features(InputEcho((32, 32)), ds, batch_size=6)
    echo_gpu = extract_features(InputEcho((32, 32)), ds, batch_size=6, device="cuda")
    np.testing.assert_allclose(echo_gpu.features, echo_cpu.features, atol=1e-5)
    amp = extract_features(model, ds, batch_size=6, device="cuda", autocast=True, channels_last=True)
    np.testing.assert_allclose(amp.features, cpu.features, rtol=0.02, atol=0.02)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("src,dst", [((28, 28), (224, 224)), ((128, 136), (16, 16)), ((64, 64), (28, 28))])
def test_cuda_resize_of_large_batches(src, dst):
    """A 256-image batch resized on the GPU (once failed in the antialiased CUDA kernel)."""
    ds = _toy(n=260, h=src[0], w=src[1])
    u8 = torch.from_numpy(ds.images(np.arange(256)))
    got = to_model_input(u8.cuda(), dst, channels_last=True).cpu()
    ref = to_model_input(u8, dst)
    torch.testing.assert_close(got, ref, atol=1e-5, rtol=1e-5)
    res = extract_features(InputEcho(dst), ds, batch_size=256, device="cuda")
    assert res.features.shape == (260, 3 * dst[0] * dst[1])
