"""What the published model cards of the built-in backbones state: source-task accuracy and size.

The priors ``source_accuracy`` and ``size`` (zoorank.metrics.combine, issue 15) rank models by
these facts. Nothing here is estimated: an accuracy is the one its publisher states for the
checkpoint, with the citation beside it; a backbone whose card states none has none.
Parameter counts are those of the loaded backbone including its source head
(``tests/unit/test_zoo_cards.py`` recounts them). A zoo file entry can declare its own
``source_accuracy`` / ``parameters``; they override these.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ModelCard:
    source_accuracy: float | None = None   # top-1 on ``source_task``, a fraction in [0, 1]
    accuracy_ref: str | None = None         # where the publisher states it
    parameters: int | None = None           # parameters of the loaded backbone (with its source head)


_TF_LITE = "tensorflow/tpu models/official/efficientnet/lite/README.md (FP32 accuracy of the original checkpoint; the weights here are its PyTorch port)"
_TV_MNV2 = "torchvision MobileNet_V2_Weights.IMAGENET1K_V1.meta['_metrics'] (acc@1 71.878)"

BUILTIN_CARDS: dict[str, ModelCard] = {
    "efficientnet_lite0": ModelCard(0.751, _TF_LITE, 4_652_008),
    "efficientnet_lite1": ModelCard(0.767, _TF_LITE, 5_416_680),
    "efficientnet_lite2": ModelCard(0.776, _TF_LITE, 6_092_072),
    "mobilenet_v2": ModelCard(0.71878, _TV_MNV2, 3_504_872),
    "efficientnet_b0_nsfw": ModelCard(None, None, 4_008_829),
    "vgg16_hed": ModelCard(None, None, 14_714_688),
    "vgg16bn_craft": ModelCard(None, None, 12_362_304),
    "ppocr_cls_mnv3": ModelCard(None, None, 128_346),
    "cnn_mnist": ModelCard(None, None, 421_642),
    "cnn_usps": ModelCard(None, None, 151_498),
    "cnn_svhn": ModelCard(None, None, 815_018),
    "cnn_digitrec": ModelCard(None, None, 390_410),
}


def model_card(spec) -> ModelCard:
    """The card of a zoo entry: its own declared fields over the built-in card (if any)."""
    base = BUILTIN_CARDS.get(spec.id, ModelCard()) if spec.source == "builtin" else ModelCard()
    acc = getattr(spec, "source_accuracy", None)
    params = getattr(spec, "parameters", None)
    return ModelCard(acc if acc is not None else base.source_accuracy,
                     "declared in the zoo file" if acc is not None else base.accuracy_ref,
                     params if params is not None else base.parameters)
