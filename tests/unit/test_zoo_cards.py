"""Model cards of the zoo (zoorank.zoo.cards): stated facts, zoo-file overrides, identity unchanged."""
from __future__ import annotations

import pytest
import torchvision.models as tvm

from zoorank.pipeline.identity import identity_record_key
from zoorank.pipeline.pairs import load_backbone
from zoorank.zoo import load_zoo
from zoorank.zoo.cards import BUILTIN_CARDS, model_card
from zoorank.zoo.spec import spec_from_mapping


def test_every_default_backbone_has_a_card_whose_size_is_its_real_parameter_count():
    for spec in load_zoo("default"):
        card = BUILTIN_CARDS[spec.id]
        assert card.parameters == sum(p.numel() for p in load_backbone(spec, "cpu").parameters()), spec.id
        assert (card.source_accuracy is None) == (card.accuracy_ref is None)


def test_mobilenet_v2_card_is_torchvisions_own():
    meta = tvm.MobileNet_V2_Weights.IMAGENET1K_V1.meta
    card = BUILTIN_CARDS["mobilenet_v2"]
    assert card.source_accuracy == pytest.approx(meta["_metrics"]["ImageNet-1K"]["acc@1"] / 100)
    assert card.parameters == meta["num_params"]


def test_zoo_file_fields_override_the_card_and_leave_the_identity_alone():
    plain = spec_from_mapping({"id": "mobilenet_v2"})
    declared = spec_from_mapping({"id": "mobilenet_v2", "source_accuracy": 0.5, "parameters": 7})
    card = model_card(declared)
    assert (card.source_accuracy, card.parameters, card.accuracy_ref) == (0.5, 7, "declared in the zoo file")
    assert model_card(plain) == BUILTIN_CARDS["mobilenet_v2"]
    assert identity_record_key(plain) == identity_record_key(declared)
    assert model_card(spec_from_mapping({"id": "r18", "source": "torchvision:resnet18",
                                         "weights": "random"})).source_accuracy is None


@pytest.mark.parametrize("value", [1.5, -0.1, "high", True])
def test_bad_source_accuracy_is_refused_naming_the_field(value):
    with pytest.raises(ValueError, match="source_accuracy.*fraction in \\[0, 1\\]"):
        spec_from_mapping({"id": "mobilenet_v2", "source_accuracy": value})
