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

    generator = torch.Generator().manual_seed(0)
    mask = torch.rand(64, 32, 3, 3, generator=generator) < 0.1
    weight = torch.randn(64, 32, 3, 3, generator=generator)
    assert layer_spectrum(mask.cuda(), weight.cuda()) == layer_spectrum(mask, weight)


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
