"""The model zoo: every model on every dataset shape, registry errors, determinism, known sizes."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from fullspectrum.errors import FullSpectrumError, UnknownNameError
from fullspectrum.models import CONV_MODEL_NAMES, MODEL_NAMES, build_model, model_options

# per-example shapes of the project's datasets: digits, mnist1d, cifar
DATASET_SHAPES = [(1, 8, 8), (1, 40), (3, 32, 32)]
FLAT_SHAPES = [(64,), (40,)]


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny batches run fastest on one thread, and the test machine is shared."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _cases():
    for name in MODEL_NAMES:
        for shape in DATASET_SHAPES + (FLAT_SHAPES if name == "mlp" else []):
            yield pytest.param(name, shape, id=f"{name}-{'x'.join(map(str, shape))}")


@pytest.mark.parametrize(("name", "shape"), list(_cases()))
def test_forward_gives_one_logit_per_class(name, shape):
    torch.manual_seed(0)
    model = build_model(name, 7, shape)
    assert model.input_shape == shape and model.num_classes == 7
    model.train()
    x = torch.randn(2, *shape)
    out = model(x)
    assert out.shape == (2, 7)
    assert torch.isfinite(out).all()
    out.sum().backward()  # every parameter is on the graph
    assert all(p.grad is not None for p in model.parameters())


@pytest.mark.parametrize("name", CONV_MODEL_NAMES)
def test_conv_dimensionality_follows_input(name):
    one_d = build_model(name, 10, (1, 40))
    kinds = {type(m) for m in one_d.modules()}
    assert nn.Conv1d in kinds and nn.Conv2d not in kinds
    assert nn.BatchNorm2d not in kinds
    two_d = build_model(name, 10, (1, 8, 8))
    kinds = {type(m) for m in two_d.modules()}
    assert nn.Conv2d in kinds and nn.Conv1d not in kinds


@pytest.mark.parametrize("name", CONV_MODEL_NAMES)
def test_layer_names_do_not_depend_on_input_size(name):
    small = [n for n, _ in build_model(name, 10, (1, 8, 8)).named_parameters()]
    large = [n for n, _ in build_model(name, 10, (3, 32, 32)).named_parameters()]
    assert small == large


@pytest.mark.parametrize("name", CONV_MODEL_NAMES)
def test_conv_models_refuse_flat_vectors(name):
    with pytest.raises(FullSpectrumError, match="without flatten"):
        build_model(name, 10, (64,))


@pytest.mark.parametrize("name", ["mlp", "lenet5", "conv6", "resnet20", "vgg16"])
def test_same_seed_same_weights(name):
    torch.manual_seed(3)
    a = build_model(name, 10, (1, 8, 8)).state_dict()
    torch.manual_seed(3)
    b = build_model(name, 10, (1, 8, 8)).state_dict()
    torch.manual_seed(4)
    c = build_model(name, 10, (1, 8, 8)).state_dict()
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], c[k]) for k in a if k.endswith("weight"))


def test_unknown_model_lists_valid_names():
    with pytest.raises(UnknownNameError) as info:
        build_model("resnet99", 10, (3, 32, 32))
    message = str(info.value)
    assert "resnet99" in message and "\n" not in message
    assert all(name in message for name in MODEL_NAMES)


def test_unknown_option_and_bad_arguments():
    with pytest.raises(FullSpectrumError, match="no option 'depth'.*widths"):
        build_model("mlp", 10, (64,), depth=3)
    with pytest.raises(FullSpectrumError, match="options: none"):
        build_model("resnet18", 10, (3, 32, 32), widths=(4,))
    with pytest.raises(FullSpectrumError, match="num_classes"):
        build_model("mlp", 0, (64,))
    with pytest.raises(FullSpectrumError, match="input_shape"):
        build_model("mlp", 10, (0, 4))
    with pytest.raises(FullSpectrumError, match="widths"):
        build_model("mlp", 10, (64,), widths=(32, -1))
    assert model_options("mlp") == ("widths",) and model_options("vgg16") == ()


def test_mlp_widths():
    model = build_model("mlp", 3, (1, 8, 8), widths=(32, 16, 8))
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(64, 32), (32, 16), (16, 8), (8, 3)]
    logistic = build_model("mlp", 3, (40,), widths=())
    assert [type(m) for m in logistic.modules() if isinstance(m, nn.Linear)] == [nn.Linear]


def _count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        # published sizes of the CIFAR-10 variants
        ("resnet18", 11_173_962),
        ("resnet34", 21_282_122),
        ("conv6", 2_262_602),  # Frankle & Carbin, Conv-6: 2.26M (convs with bias, fc 4096-256-256-10)
        ("lenet5", 62_006),  # the textbook LeNet-5 on 3x32x32 (400 flattened features)
    ],
)
def test_known_parameter_counts_on_cifar(name, expected):
    assert _count(build_model(name, 10, (3, 32, 32))) == expected


def test_resnet_structure_matches_cifar_variant():
    model = build_model("resnet18", 10, (3, 32, 32))
    assert model.conv1.kernel_size == (3, 3) and model.conv1.stride == (1, 1)
    assert not any(isinstance(m, nn.MaxPool2d) for m in model.modules())
    strides = [model.get_submodule(f"layer{i}")[0].conv1.stride for i in range(1, 5)]
    assert strides == [(1, 1), (2, 2), (2, 2), (2, 2)]
    shortcut = model.layer2[0].shortcut[0]
    assert isinstance(shortcut, nn.Conv2d) and shortcut.kernel_size == (1, 1)
    assert isinstance(model.layer1[0].shortcut, nn.Identity)
    blocks = [len(model.get_submodule(f"layer{i}")) for i in range(1, 5)]
    assert blocks == [2, 2, 2, 2]
    assert [
        len(build_model("resnet34", 10, (3, 32, 32)).get_submodule(f"layer{i}")) for i in range(1, 5)
    ] == [
        3,
        4,
        6,
        3,
    ]


def test_small_inputs_skip_downsampling_at_width_one():
    # VGG-16 has five pools; an 8x8 digit reaches 1x1 after three of them
    vgg = build_model("vgg16", 10, (1, 8, 8))
    assert sum(isinstance(m, nn.MaxPool2d) for m in vgg.modules()) == 3
    assert sum(isinstance(m, nn.MaxPool2d) for m in build_model("vgg16", 10, (3, 32, 32)).modules()) == 5
    assert sum(isinstance(m, nn.BatchNorm2d) for m in vgg.modules()) == 13
    # ResNet-18 on 8x8: 8 -> 4 -> 2 -> 1, so all three strided stages still downsample
    model = build_model("resnet18", 10, (1, 8, 8)).eval()
    stem = torch.relu(model.bn1(model.conv1(torch.zeros(1, 1, 8, 8))))
    shapes = [tuple(stem.shape[2:])]
    for stage in (model.layer1, model.layer2, model.layer3, model.layer4):
        stem = stage(stem)
        shapes.append(tuple(stem.shape[2:]))
    assert shapes == [(8, 8), (8, 8), (4, 4), (2, 2), (1, 1)]
    # ResNet-20 on a 2x2 input: the second strided stage keeps stride 1 instead of failing
    tiny = build_model("resnet20", 10, (1, 2, 2))
    assert tiny.layer3[0].conv1.stride == (1, 1) and tiny.layer2[0].conv1.stride == (2, 2)
    assert tiny(torch.zeros(2, 1, 2, 2)).shape == (2, 10)


def test_lenet_pads_small_inputs():
    small = build_model("lenet5", 10, (1, 8, 8))
    convs = [m for m in small.modules() if isinstance(m, nn.Conv2d)]
    assert [c.padding for c in convs] == [(2, 2), (2, 2)]
    assert small.classifier[1].in_features == 16 * 2 * 2
    seq = build_model("lenet5", 10, (1, 40))
    assert seq.classifier[1].in_features == 16 * 7  # 40 -> 36 -> 18 -> 14 -> 7


def test_bad_model_name_type():
    with pytest.raises(UnknownNameError):
        build_model(None, 10, (64,))
