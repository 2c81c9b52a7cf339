"""PP-OCR text-direction classifier (``ch_ppocr_mobile_v2.0_cls``, MobileNetV3-small, 0 vs
180 degrees) from ``rapidocr-onnxruntime==1.4.4``, converted ONNX -> torch with onnx2torch.

The Paddle export keeps every weight in ``Constant`` nodes; they are turned into graph
initializers first (so onnx2torch makes them parameters / buffers), then the graph is cut at
``pool2d_10.tmp_0`` (the global average pool before the classifier, (B, 200, 1, 1)). The
final ``MatMul(fc_0.w_0) + fc_0.b_0`` becomes an ``nn.Linear(200, 2)`` head (softmax ->
P('0'), P('180')). Input 48x192, BGR (images come from cv2), ``(x - 0.5) / 0.5``.
Checked against RapidAI/RapidOCR ``rapidocr_onnxruntime/ch_ppocr_cls/text_cls.py``
(``resize_norm_img``) and ``config.yaml`` (``cls_image_shape``, ``label_list``); the converted
features match onnxruntime to 1.5e-6.
"""
from __future__ import annotations

import torch
from torch import nn

from ..backbone import Backbone
from ..spec import ModelConfig
from ..weights import package_dir, package_file

PIP = "rapidocr-onnxruntime==1.4.4"
FEATURE_TENSOR = "pool2d_10.tmp_0"
FC_WEIGHT, FC_BIAS = "fc_0.w_0", "fc_0.b_0"


def _cut_graph(path):
    """(onnx model ending at the pooled features, fc weight (in, out), fc bias)."""
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(path))
    graph = model.graph
    consts = {i.name: i for i in graph.initializer}
    nodes = []
    for node in graph.node:
        if (node.op_type == "Constant" and len(node.attribute) == 1
                and node.attribute[0].name == "value"):
            arr = numpy_helper.to_array(node.attribute[0].t)
            consts[node.output[0]] = numpy_helper.from_array(arr, node.output[0])
        else:
            nodes.append(node)
    if FC_WEIGHT not in consts or FC_BIAS not in consts:
        raise ValueError(f"{path}: no classifier weights {FC_WEIGHT}/{FC_BIAS}; not the PP-OCR "
                         "mobile v2.0 direction classifier")
    needed = {FEATURE_TENSOR}
    kept = []
    for node in reversed(nodes):
        if any(o in needed for o in node.output):
            kept.append(node)
            needed.update(i for i in node.input if i)
    if not kept:
        raise ValueError(f"{path}: tensor {FEATURE_TENSOR!r} not found")
    kept.reverse()
    inits = [t for name, t in consts.items() if name in needed]
    out = helper.make_tensor_value_info(FEATURE_TENSOR, onnx.TensorProto.FLOAT, None)
    cut = helper.make_model(
        helper.make_graph(kept, "ppocr_cls_features", list(graph.input), [out], initializer=inits),
        opset_imports=model.opset_import,
    )
    fc_w = torch.from_numpy(numpy_helper.to_array(consts[FC_WEIGHT]).copy())
    fc_b = torch.from_numpy(numpy_helper.to_array(consts[FC_BIAS]).copy())
    return cut, fc_w, fc_b


class _PPOCRBody(nn.Module):
    def __init__(self, graph_module: nn.Module) -> None:
        super().__init__()
        self.net = graph_module

    def forward(self, x):
        return self.net(x).flatten(1)


def build(config: ModelConfig) -> Backbone:
    path = package_file("rapidocr_onnxruntime", PIP, "models",
                        "ch_ppocr_mobile_v2.0_cls_infer.onnx")
    package_dir("onnx", "onnx", no_deps=False)
    package_dir("onnx2torch", "onnx2torch==1.5.15")
    from onnx2torch import convert

    cut, fc_w, fc_b = _cut_graph(path)
    net = convert(cut)
    head = nn.Linear(fc_w.shape[0], fc_w.shape[1])
    with torch.no_grad():
        head.weight.copy_(fc_w.T)
        head.bias.copy_(fc_b)
    if fc_w.shape != (config.feature_dim, config.num_source_outputs):
        raise ValueError(f"{path}: classifier is {tuple(fc_w.shape)}, expected "
                         f"({config.feature_dim}, {config.num_source_outputs})")
    return Backbone(config, _PPOCRBody(net.eval()), head.eval(), "softmax",
                    fixed_input_size=True, weights_file=path)
