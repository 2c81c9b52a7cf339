"""General sources (torchvision / timm / local state dict / TorchScript) and zoo files:
real files written to tmp_path, loaded through the real code path."""
from __future__ import annotations

import os
import textwrap

import pytest
import torch

import zoorank.zoo as zoo
from zoorank.zoo import ModelSpec, load_zoo, spec_from_mapping

MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)


@pytest.fixture(scope="module")
def resnet18():
    import torchvision

    torch.manual_seed(1)
    model = torchvision.models.resnet18(weights=None, num_classes=7).eval()
    # make BN statistics non-trivial so a wrong load would show
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    return model


def _reference(model, x):
    """Penultimate features and logits of a torchvision ResNet, ImageNet-normalised."""
    xn = (x - MEAN) / STD
    m = model
    h = m.maxpool(m.relu(m.bn1(m.conv1(xn))))
    h = m.layer4(m.layer3(m.layer2(m.layer1(h))))
    feats = torch.flatten(m.avgpool(h), 1)
    return feats, m.fc(feats)


def _write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(textwrap.dedent(text))
    return p


def test_torchvision_state_dict_matches_in_memory(tmp_path, resnet18):
    torch.save(resnet18.state_dict(), tmp_path / "r18.pth")
    zf = _write(tmp_path, "zoo.yaml", """\
        - id: my_resnet
          source: torchvision:resnet18
          weights_path: ./r18.pth
          source_task: seven-things
        """)
    (spec,) = load_zoo(zf)
    model = zoo.load_model(spec)
    assert model.config.feature_dim == 512
    assert model.config.num_source_outputs == 7
    assert model.config.source_task == "seven-things"
    assert model.config.input_size == (224, 224)
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        feats, probs = model.forward_with_outputs(x)
        ref_feats, ref_logits = _reference(resnet18, x)
    torch.testing.assert_close(feats, ref_feats, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(probs, torch.softmax(ref_logits, 1), atol=1e-6, rtol=1e-4)
    import hashlib

    assert model.weights_digest() == hashlib.sha256((tmp_path / "r18.pth").read_bytes()).hexdigest()
    assert zoo.get_config(spec).feature_dim == 512


def test_torchscript_file_with_declared_arch(tmp_path, resnet18):
    traced = torch.jit.trace(resnet18, torch.rand(1, 3, 32, 32))
    traced.save(str(tmp_path / "r18_ts.pt"))
    spec = spec_from_mapping({"id": "scripted", "source": "local", "path": "r18_ts.pt",
                              "arch": "torchvision:resnet18"}, base_dir=tmp_path)
    model = zoo.load_model(spec)
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(model(x), _reference(resnet18, x)[0], atol=1e-5, rtol=1e-4)


def test_local_state_dict_nested_and_dataparallel_prefix(tmp_path, resnet18):
    sd = {f"module.{k}": v for k, v in resnet18.state_dict().items()}
    torch.save({"epoch": 3, "state_dict": sd}, tmp_path / "ckpt.pth")
    spec = spec_from_mapping({"id": "ck", "source": "local", "path": "ckpt.pth",
                              "arch": "torchvision:resnet18", "format": "state_dict"},
                             base_dir=tmp_path)
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(zoo.load_model(spec)(x), _reference(resnet18, x)[0],
                                   atol=1e-5, rtol=1e-4)


def test_timm_checkpoint_matches_in_memory(tmp_path):
    timm = pytest.importorskip("timm")
    torch.manual_seed(2)
    ref = timm.create_model("test_resnet", pretrained=False, num_classes=5).eval()
    torch.save({"state_dict": ref.state_dict()}, tmp_path / "tr.pth")
    spec = spec_from_mapping({"id": "tiny", "source": "timm:test_resnet",
                              "checkpoint": "tr.pth"}, base_dir=tmp_path)
    model = zoo.load_model(spec)
    cfg = model.config
    assert cfg.input_size == tuple(ref.pretrained_cfg["input_size"][-2:])
    assert cfg.feature_dim == ref.num_features
    assert cfg.num_source_outputs == 5
    x = torch.rand(2, 3, 64, 64)
    mean = torch.tensor(cfg.mean).view(1, 3, 1, 1)
    std = torch.tensor(cfg.std).view(1, 3, 1, 1)
    with torch.no_grad():
        feats, probs = model.forward_with_outputs(x)
        xn = (x - mean) / std
        ref_feats = ref.forward_head(ref.forward_features(xn), pre_logits=True)
        ref_logits = ref(xn)
    torch.testing.assert_close(feats, ref_feats, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(probs, torch.softmax(ref_logits, 1), atol=1e-6, rtol=1e-4)


def test_local_timm_torchscript(tmp_path):
    timm = pytest.importorskip("timm")
    torch.manual_seed(3)
    ref = timm.create_model("test_resnet", pretrained=False).eval()
    torch.jit.script(ref).save(str(tmp_path / "tr_ts.pt"))
    spec = spec_from_mapping({"id": "t", "source": "local", "path": "tr_ts.pt",
                              "arch": "timm:test_resnet"}, base_dir=tmp_path)
    model = zoo.load_model(spec)
    x = torch.rand(1, 3, 64, 64)
    mean = torch.tensor(model.config.mean).view(1, 3, 1, 1)
    std = torch.tensor(model.config.std).view(1, 3, 1, 1)
    with torch.no_grad():
        ref_feats = ref.forward_head(ref.forward_features((x - mean) / std), pre_logits=True)
        torch.testing.assert_close(model(x), ref_feats, atol=1e-5, rtol=1e-4)


def test_mismatched_weights_name_keys_and_file(tmp_path, resnet18):
    torch.save(resnet18.state_dict(), tmp_path / "r18.pth")
    spec = spec_from_mapping({"id": "wrong", "source": "torchvision:resnet34",
                              "weights_path": "r18.pth"}, base_dir=tmp_path)
    with pytest.raises(ValueError, match=r"missing keys \(\d+\): layer1\.2\.") as exc:
        zoo.load_model(spec)
    assert "r18.pth" in str(exc.value)
    spec = spec_from_mapping({"id": "wrong2", "source": "torchvision:resnet18",
                              "weights_path": "r18.pth", "num_classes": 10}, base_dir=tmp_path)
    with pytest.raises(ValueError, match=r"shape mismatches \(2\): fc\.weight \(file \(7, 512\)"):
        zoo.load_model(spec)


def test_pickled_module_is_refused(tmp_path, resnet18):
    torch.save(resnet18, tmp_path / "whole_model.pth")  # pickles the class: needs code execution
    spec = spec_from_mapping({"id": "p", "source": "torchvision:resnet18",
                              "weights_path": "whole_model.pth"}, base_dir=tmp_path)
    with pytest.raises(ValueError, match="weights_only"):
        zoo.load_model(spec)


def test_torchvision_enum_weights_offline(tmp_path, resnet18, monkeypatch):
    import torchvision

    old = torch.hub.get_dir()
    torch.hub.set_dir(str(tmp_path / "hub"))
    try:
        spec = spec_from_mapping({"id": "tv", "source": "torchvision:resnet18",
                                  "weights": "IMAGENET1K_V1"})
        with pytest.raises(FileNotFoundError, match="not in the local torch hub cache"):
            zoo.load_model(spec)
        # Put a (random) file under the cached name: it must load from the cache, offline.
        torch.manual_seed(4)
        fake = torchvision.models.resnet18(weights=None).state_dict()
        url = torchvision.models.ResNet18_Weights.IMAGENET1K_V1.url
        (tmp_path / "hub" / "checkpoints").mkdir(parents=True)
        torch.save(fake, tmp_path / "hub" / "checkpoints" / os.path.basename(url))
        for name in ("IMAGENET1K_V1", "ResNet18_Weights.IMAGENET1K_V1", "DEFAULT"):
            model = zoo.load_model(spec_from_mapping(
                {"id": "tv", "source": "torchvision:resnet18", "weights": name}))
            cfg = model.config
            assert (cfg.input_size, cfg.feature_dim, cfg.source_task, cfg.num_source_outputs) == (
                (224, 224), 512, "imagenet-1k", 1000)
            torch.testing.assert_close(model.head.weight, fake["fc.weight"])
        with pytest.raises(ValueError, match="IMAGENET1K_V1"):
            zoo.load_model(spec_from_mapping({"id": "tv", "source": "torchvision:resnet18",
                                              "weights": "IMAGENET9K"}))
    finally:
        torch.hub.set_dir(old)


def test_random_weights_are_deterministic_and_headless():
    spec = spec_from_mapping({"id": "rnd", "source": "torchvision:resnet18", "weights": "random"})
    a, b = zoo.load_model(spec), zoo.load_model(spec)
    assert a.weights_digest() == b.weights_digest()
    assert a.config.num_source_outputs is None
    feats, probs = a.forward_with_outputs(torch.rand(1, 3, 32, 32))
    assert feats.shape == (1, 512) and probs is None


def test_unknown_architectures_suggest_names(tmp_path):
    with pytest.raises(ValueError, match="resnet18"):
        zoo.load_model(spec_from_mapping({"id": "x", "source": "torchvision:resnet81",
                                          "weights": "random"}))
    (tmp_path / "w.pth").write_bytes(b"")
    with pytest.raises(ValueError, match="unknown timm architecture"):
        zoo.load_model(spec_from_mapping({"id": "x", "source": "timm:test_resnett",
                                          "checkpoint": "w.pth"}, base_dir=tmp_path))


# ----------------------------------------------------------------------------- zoo files


def test_zoo_file_mixes_ids_and_specs(tmp_path):
    zf = _write(tmp_path, "zoo.yaml", """\
        # comment
        - cnn_mnist
        - id: r18
          source: torchvision:resnet18
          weights: random
          input_size: 96
          mean: [0.5, 0.5, 0.5]
          std: [0.5, 0.5, 0.5]
        """)
    specs = load_zoo(zf)
    assert [s.id for s in specs] == ["cnn_mnist", "r18"]
    assert specs[1].input_size == (96, 96) and specs[1].mean == (0.5, 0.5, 0.5)
    assert specs[1].origin.endswith("zoo.yaml:3")
    cfg = zoo.get_config(specs[1])
    assert cfg.input_size == (96, 96) and cfg.std == (0.5, 0.5, 0.5)


def test_zoo_file_unknown_field_names_file_line_and_field(tmp_path):
    zf = _write(tmp_path, "bad.yaml", """\
        - cnn_mnist
        - id: r18
          source: torchvision:resnet18
          wieghts_path: ./r18.pth
        """)
    with pytest.raises(ValueError, match=r"bad\.yaml:4: field 'wieghts_path': unknown field"):
        load_zoo(zf)


def test_zoo_file_field_errors(tmp_path):
    cases = {
        "- id: a\n  source: timm:resnet18\n  weights: IMAGENET1K_V1\n":
            r":3: field 'weights': does not apply to source 'timm'",
        "- id: a\n  source: torchvision:resnet18\n  weights: random\n  input_size: [1, 2, 3]\n":
            r":4: field 'input_size'",
        "- id: a\n  source: hub:resnet18\n":
            r":2: field 'source': unknown source",
        "- cnn_mnist\n- cnn_mnist\n":
            r":2: field 'id': duplicate model id",
        "- id: a\n  source: torchvision:resnet18\n":
            r":1: field 'weights'",
        "- cnn_minst\n": r":1: field 'id': unknown model id 'cnn_minst'; did you mean cnn_mnist",
        "models: 3\n": r"a zoo file is a YAML list",
    }
    for i, (text, pattern) in enumerate(cases.items()):
        zf = tmp_path / f"z{i}.yaml"
        zf.write_text(text)
        with pytest.raises(ValueError, match=pattern):
            load_zoo(zf)


def test_malformed_yaml_names_line(tmp_path):
    zf = _write(tmp_path, "broken.yaml", """\
        - cnn_mnist
        - id: r18
          source: [unclosed
        """)
    with pytest.raises(ValueError, match=r"broken\.yaml:\d+: malformed YAML"):
        load_zoo(zf)


def test_paths_resolve_relative_to_zoo_file_not_cwd(tmp_path, resnet18, monkeypatch):
    sub = tmp_path / "zoos"
    sub.mkdir()
    torch.save(resnet18.state_dict(), sub / "r18.pth")
    zf = _write(sub, "zoo.yaml", "- id: r\n  source: torchvision:resnet18\n"
                                 "  weights_path: r18.pth\n")
    monkeypatch.chdir(tmp_path)
    (spec,) = load_zoo(zf)
    assert zoo.load_model(spec).config.num_source_outputs == 7


def test_path_escaping_root_is_refused(tmp_path, resnet18):
    torch.save(resnet18.state_dict(), tmp_path / "outside.pth")
    sub = tmp_path / "zoo"
    sub.mkdir()
    zf = _write(sub, "zoo.yaml", "- id: r\n  source: torchvision:resnet18\n"
                                 "  weights_path: ../outside.pth\n")
    with pytest.raises(ValueError, match=r"zoo\.yaml:1: .*escapes the root"):
        load_zoo(zf)
    spec = spec_from_mapping({"id": "r", "source": "torchvision:resnet18",
                              "weights_path": "../outside.pth"}, base_dir=sub)
    with pytest.raises(ValueError, match="escapes the root"):
        zoo.load_model(spec)
    # a wider root allows it
    assert zoo.load_model(spec, root=tmp_path).config.feature_dim == 512
    # absolute paths: only with allow_absolute_paths
    abs_spec = spec_from_mapping({"id": "r", "source": "torchvision:resnet18",
                                  "weights_path": str(tmp_path / "outside.pth")}, base_dir=sub)
    with pytest.raises(ValueError, match="absolute"):
        zoo.load_model(abs_spec, allow_absolute_paths=False)
    assert zoo.load_model(abs_spec, allow_absolute_paths=True).config.feature_dim == 512
    # symlinks out of the root: only with allow_absolute_paths
    (sub / "link.pth").symlink_to(tmp_path / "outside.pth")
    link_spec = spec_from_mapping({"id": "r", "source": "torchvision:resnet18",
                                   "weights_path": "link.pth"}, base_dir=sub)
    with pytest.raises(ValueError, match="symlink"):
        zoo.load_model(link_spec, allow_absolute_paths=False)
    with pytest.raises(ValueError, match="escapes the root|symlink"):
        load_zoo(_write(sub, "z2.yaml", "- id: r\n  source: torchvision:resnet18\n"
                                        "  weights_path: link.pth\n"), allow_absolute_paths=False)


def test_missing_weights_file(tmp_path):
    spec = spec_from_mapping({"id": "r", "source": "torchvision:resnet18",
                              "weights_path": "nope.pth"}, base_dir=tmp_path)
    with pytest.raises(FileNotFoundError, match="nope.pth"):
        zoo.load_model(spec)


def test_source_strings_need_a_spec():
    with pytest.raises(ValueError, match="needs weights"):
        zoo.load_model("torchvision:resnet18")
    assert isinstance(ModelSpec(id="cnn_mnist"), ModelSpec)
