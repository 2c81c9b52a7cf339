"""Small digit CNNs trained from scratch: ``ccexam==1.0.0`` (MNIST / USPS / SVHN) and
``digit-recognizer-py==0.1.0`` (MNIST).

Features are the input of the final ``nn.Linear`` (the hidden fully connected layer after its
ReLU: 128-d for ccexam MNIST/USPS, 256-d for SVHN and digit-recognizer); the source head is
that final layer (10-way softmax). MNIST-style nets expect white digits on black, grey,
normalised with the training set's mean/std (``ccexam/constants.py``; digit-recognizer uses
the MNIST statistics). They flatten a fixed-size map, so the input size is fixed.
Checked against ccexam ``ccexam/models.py`` / ``ccexam/constants.py`` and digit-recognizer-py
``digit_recognizer/model.py`` / ``digit_recognizer/recognizer.py``.
"""
from __future__ import annotations

import importlib.util
import sys

from torch import nn

from ..backbone import Backbone
from ..spec import ModelConfig
from ..weights import extract_state_dict, load_state_dict_checked, load_torch_file, package_file

CCEXAM_PIP = "ccexam==1.0.0"
DIGITREC_PIP = "digit-recognizer-py==0.1.0"
_CCEXAM = {  # variant -> (class name, weight file, input size)
    "mnist": ("MNISTNet", "mnist.pth", 28),
    "usps": ("USPSNet", "usps.pth", 16),
    "svhn": ("SVHNNet", "svhn.pth", 32),
}


def _load_module_from_file(name: str, path):
    """Import one file as a module without running its package's ``__init__``."""
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault(name, module)
    spec.loader.exec_module(module)
    return module


def _split(features: nn.Module, classifier: nn.Sequential) -> tuple[nn.Module, nn.Linear]:
    """body = features -> flatten -> classifier[:-1]; head = classifier[-1]."""
    head = classifier[-1]
    if not isinstance(head, nn.Linear):
        raise ValueError("expected the classifier to end with nn.Linear")
    body = nn.Sequential(features, nn.Flatten(1), *list(classifier)[:-1])
    return body, head


def build_ccexam(config: ModelConfig, variant: str) -> Backbone:
    cls_name, file_name, size = _CCEXAM[variant]
    path = package_file("ccexam", CCEXAM_PIP, "weights", file_name)
    models = _load_module_from_file("zoorank_ext_ccexam_models",
                                    package_file("ccexam", CCEXAM_PIP, "models.py"))
    net = getattr(models, cls_name)(input_size=size)
    load_state_dict_checked(net, extract_state_dict(load_torch_file(path), path), path)
    body, head = _split(net.features, net.classifier)
    return Backbone(config, body.eval(), head.eval(), "softmax", weights_file=path,
                    fixed_input_size=True)


def build_digitrec(config: ModelConfig) -> Backbone:
    path = package_file("digit_recognizer", DIGITREC_PIP, "models", "handwriting_model.pth")
    model_py = package_file("digit_recognizer", DIGITREC_PIP, "model.py")
    module = _load_module_from_file("zoorank_ext_digit_recognizer_model", model_py)
    net = module.CNN()
    load_state_dict_checked(net, extract_state_dict(load_torch_file(path), path), path)
    body, head = _split(net.conv_layers, net.fc_layers)
    return Backbone(config, body.eval(), head.eval(), "softmax", weights_file=path,
                    fixed_input_size=True)
