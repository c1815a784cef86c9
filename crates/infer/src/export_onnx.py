# Converts an evdet TorchScript export to ONNX (run by `evdet export --format onnx`, which embeds
# this file): torch.onnx.export of the traced module, then checks that the graph is valid ONNX and
# holds no training-only operator. Reads a JSON spec (paths, names, shapes, opset) from argv[1].
import json
import sys
import warnings

import torch

warnings.filterwarnings("ignore")
spec = json.load(open(sys.argv[1]))


def upsample_nearest_exact2d(g, x, output_size, scales_h, scales_w):
    """PyTorch's nearest-exact (source index floor((i + 0.5) / scale)), which the TorchScript
    exporter lacks: ONNX Resize, nearest, half_pixel coordinates rounded half up (floor(x + 0.5)
    with x = (i + 0.5) / scale - 0.5 is floor((i + 0.5) / scale))."""
    from torch.onnx import symbolic_helper as sh

    size = sh._maybe_get_const(output_size, "is")
    shape = g.op("Shape", x)
    nc = g.op(
        "Slice",
        shape,
        g.op("Constant", value_t=torch.tensor([0])),
        g.op("Constant", value_t=torch.tensor([2])),
    )
    sizes = g.op("Concat", nc, g.op("Constant", value_t=torch.tensor(list(size), dtype=torch.int64)), axis_i=0)
    empty = g.op("Constant", value_t=torch.tensor([], dtype=torch.float32))
    return g.op(
        "Resize",
        x,
        empty,
        empty,
        sizes,
        coordinate_transformation_mode_s="half_pixel",
        mode_s="nearest",
        nearest_mode_s="round_prefer_ceil",
    )


torch.onnx.register_custom_op_symbolic(
    "aten::_upsample_nearest_exact2d", upsample_nearest_exact2d, spec["opset"]
)
module = torch.jit.load(spec["torchscript"], map_location=spec["device"])
dtype = torch.float16 if spec["dtype"] == "float16" else torch.float32
args = tuple(torch.zeros(s, dtype=dtype, device=spec["device"]) for s in spec["input_shapes"])
torch.onnx.export(
    module,
    args,
    spec["out"],
    dynamo=False,
    opset_version=spec["opset"],
    input_names=spec["input_names"],
    output_names=spec["output_names"],
    do_constant_folding=True,
)
import onnx  # noqa: E402

model = onnx.load(spec["out"])
onnx.checker.check_model(model)
TRAINING_ONLY = {"Dropout", "RandomNormal", "RandomNormalLike", "RandomUniform", "RandomUniformLike",
                 "Bernoulli", "Multinomial", "Gradient", "Momentum", "Adagrad", "Adam"}
bad = sorted({n.op_type for n in model.graph.node if n.op_type in TRAINING_ONLY})
for n in model.graph.node:
    if n.op_type == "BatchNormalization":
        if any(a.name == "training_mode" and a.i == 1 for a in n.attribute):
            bad.append("BatchNormalization(training_mode=1)")
if bad:
    sys.exit(f"the ONNX graph holds training-only operators: {', '.join(bad)}")
print(json.dumps({"nodes": len(model.graph.node), "opset": spec["opset"]}))
