"""The CUDA paths: skipped cleanly without a GPU (as on CI); run them on a machine with one.

python -m pytest -m gpu tests/test_gpu.py
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


def test_spectrum_of_cuda_tensors_equals_the_cpu_one():
    from fullspectrum.spectrum import layer_spectrum
    from tests.test_torch_backend import assert_same_spectrum

    generator = torch.Generator().manual_seed(0)
    mask = torch.rand(64, 32, 3, 3, generator=generator) < 0.1
    weight = torch.randn(64, 32, 3, 3, generator=generator)
    # The CUDA path runs torch's arithmetic: equal to rounding, not bit for bit.
    assert_same_spectrum(layer_spectrum(mask.cuda(), weight.cuda()), layer_spectrum(mask, weight), "cuda")


def resnet18_erk_layers(density: float, seed: int = 0) -> list[tuple[torch.Tensor, torch.Tensor, str]]:
    """Every Conv/Linear weight of a CIFAR ResNet-18 with an ERK mask (random within each layer)."""
    from fullspectrum.models import build_model
    from fullspectrum.pruning import erk_densities

    torch.manual_seed(seed)
    weights = {
        name: p.detach()
        for name, p in build_model("resnet18", 10, (3, 32, 32)).named_parameters()
        if name.endswith("weight") and p.dim() in (2, 4)
    }
    densities = erk_densities({name: w.shape for name, w in weights.items()}, density)
    generator = torch.Generator().manual_seed(seed)
    layers = []
    for name, weight in weights.items():
        kept = int(round(densities[name] * weight.numel()))
        mask = torch.zeros(weight.numel(), dtype=torch.bool)
        mask[torch.randperm(weight.numel(), generator=generator)[:kept]] = True
        layers.append((mask.reshape(weight.shape), weight, name))
    return layers


@pytest.mark.parametrize("density", [0.01, 0.05])
def test_the_cuda_backend_equals_numpy_on_resnet18_erk_masks(density):
    from fullspectrum.spectrum import layer_spectra, layer_spectrum
    from tests.test_torch_backend import assert_same_spectrum

    layers = resnet18_erk_layers(density)
    want = layer_spectra(layers, device="cpu")
    got = layer_spectra(layers, device="cuda")
    for (_, _, name), g, w in zip(layers, got, want, strict=True):
        assert_same_spectrum(g, w, f"{name} at {density}")
    for (mask, weight, name), w in list(zip(layers, want))[:6]:  # and one layer at a time
        assert_same_spectrum(layer_spectrum(mask, weight, device="cuda"), w, f"{name} alone")


def test_the_cuda_golub_kahan_equals_numpy_on_connected_blocks():
    from fullspectrum.spectrum.lanczos import batched_golub_kahan
    from fullspectrum.spectrum.torch_backend import TorchBackend
    from tests.test_torch_backend import TOLERANCE, block_diagonal

    for segmented in (True, False):
        matrix, rows, cols, _ = block_diagonal(np.random.default_rng(1), weighted=True)
        got = TorchBackend("cuda", segmented=segmented).golub_kahan(matrix, rows, cols, 2)
        want = batched_golub_kahan(matrix, rows, cols, 2)
        assert np.all(np.abs(got - want) <= TOLERANCE * np.maximum(1.0, want)), segmented


def test_layer_spectra_of_cuda_tensors_pick_the_cuda_backend(monkeypatch):
    from fullspectrum.spectrum import backends, layer_spectra
    from fullspectrum.spectrum import torch_backend as tb

    mask, weight, name = resnet18_erk_layers(0.01)[1]
    mask, weight = mask.cuda(), weight.cuda()
    assert (
        backends.backend_for(backends.device_of(mask, weight)).name
        == f"torch:cuda:{torch.cuda.current_device()}"
    )
    used = []
    for kernel in ("golub_kahan", "dense_top"):
        original = getattr(tb.TorchBackend, kernel)

        def spy(self, *args, original=original):
            used.append(self.name)
            return original(self, *args)

        monkeypatch.setattr(tb.TorchBackend, kernel, spy)
    layer_spectra([(mask, weight, name)])
    assert used and set(used) == {f"torch:cuda:{torch.cuda.current_device()}"}


def test_generators_on_a_cuda_model_keep_the_exact_density_and_the_weights():
    from fullspectrum.models import build_model
    from fullspectrum.pruning import generate_masks

    torch.manual_seed(0)
    model = build_model("lenet5", 10, (1, 8, 8)).cuda()
    before = {name: value.clone() for name, value in model.state_dict().items()}
    data = [(torch.randn(32, 1, 8, 8, device="cuda"), torch.randint(0, 10, (32,), device="cuda"))]
    for method in ("snip", "grasp", "synflow"):
        result = generate_masks(model, method, 0.1, data=data, seed=0)
        assert result.kept == round(0.1 * result.total)
    assert all(torch.equal(before[name], value) for name, value in model.state_dict().items())


def test_itop_trains_on_cuda_with_exact_layer_densities(tmp_path):
    from fullspectrum.runs import RunStore
    from fullspectrum.training import TrainConfig, train

    config = TrainConfig(epochs=4, density=0.2, lr=0.1, delta_t=20, snapshot_every=20, device="cuda",
                         model_options={"widths": [64]})  # fmt: skip
    result = train(config, tmp_path / "run")
    store = RunStore.open(tmp_path / "run")
    assert result.status == "finished" and store.info["device"].startswith("cuda")
    assert store.info["spectra"] == "worker process"  # the GPU trains on while a CPU core computes them
    assert result.test_accuracy > 0.5  # chance is 0.1
    first, last = store.mask_steps()[0], store.mask_steps()[-1]
    for name, mask in store.load_masks(last).items():
        assert int(mask.sum()) == int(store.load_masks(first)[name].sum())  # rewiring keeps each count
    layers = store.layers()
    assert np.isfinite(layers["sigma1"]).all() and (layers.query("step == 0")["moving_distance"] == 0).all()


def test_pags_on_cuda_keeps_the_base_budget(tmp_path):
    from fullspectrum.sampling import SamplingConfig, run_pags

    config = SamplingConfig(
        model="mlp", data="digits", generator="snip", density=0.1, population=4, device="cuda"
    )
    result = run_pags(config, tmp_path / "pags")
    for name, mask in result.assembled_masks.items():
        assert int(mask.sum()) == int(result.base_masks[name].sum())
