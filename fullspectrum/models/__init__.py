"""The model zoo: MLP, LeNet-5, Conv-6, ResNet-20/18/34 and VGG-16 (CIFAR variants).

``build_model(name, num_classes, input_shape, **options)`` builds any of
``MODEL_NAMES`` for 1-D ``(C, L)``, 2-D ``(C, H, W)`` or (MLP only) flat inputs;
the convolutional nets adapt their pooling to small inputs such as 8×8 digits.
These are the networks FS23 (ResNet-18/34, VGG-16), ITOP21 and the LTH papers
(LeNet-5, Conv-6) prune.

Modules: :mod:`~fullspectrum.models.registry` (``MODELS``, ``build_model``; a new model is
registered there), one module per family (:mod:`~fullspectrum.models.mlp`,
:mod:`~fullspectrum.models.lenet`, :mod:`~fullspectrum.models.conv6`,
:mod:`~fullspectrum.models.resnet`, :mod:`~fullspectrum.models.vgg`) and the
dimension-generic blocks they share (:mod:`~fullspectrum.models._layers`).
"""

from __future__ import annotations

from fullspectrum.models.registry import (
    CONV_MODEL_NAMES,
    MODEL_NAMES,
    MODELS,
    ModelBuilder,
    build_model,
    model_options,
)

__all__ = ["CONV_MODEL_NAMES", "MODEL_NAMES", "MODELS", "ModelBuilder", "build_model", "model_options"]
