"""An ITOP-style sparse training loop of your own, watched by ``fullspectrum.Tracker``.

Nothing here uses fullspectrum's trainer: the loop builds its own MLP, keeps its own
masks (random at ``--density``), multiplies them into the weights after every SGD step,
and every ``--delta-t`` steps prunes the smallest-magnitude kept weights of each layer and
regrows as many at random positions (ITOP-Rand / SET: Liu et al., ICML 2021; Mocanu et al.,
2018). The tracker gets the masks through a callable and writes an ordinary run folder:
full-spectrum snapshots every ``--every`` steps (computed in a worker process beside the
loop), the prune/grow events, the training loss at every step, validation accuracy, and the
final test accuracy. Open it with ``fullspectrum runs``, ``fullspectrum export`` or the app.

    python examples/itop_loop.py --steps 600 --every 100 --out runs/itop-example
"""

from __future__ import annotations

import argparse
import math
from collections import OrderedDict
from datetime import datetime

import torch
import torch.nn.functional as F
from torch import nn

import fullspectrum
from fullspectrum.data import load_dataset


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300, help="SGD steps (default 300: seconds on a CPU)")
    parser.add_argument("--every", type=int, default=100, help="steps between spectral snapshots")
    parser.add_argument("--delta-t", type=int, default=50, help="steps between mask updates (ITOP's ΔT)")
    parser.add_argument("--density", type=float, default=0.1, help="fraction of weights kept per layer")
    parser.add_argument("--prune-rate", type=float, default=0.3, help="fraction of kept weights rewired")
    parser.add_argument("--width", type=int, default=128, help="hidden units of each of the two layers")
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    default_out = f"runs/itop-loop-{datetime.now():%Y%m%d-%H%M%S}"
    parser.add_argument(
        "--out", default=default_out, help="a new run folder (default: runs/itop-loop-<time>)"
    )
    return parser.parse_args(argv)


def random_masks(model: nn.Module, density: float, generator: torch.Generator) -> dict[str, torch.Tensor]:
    """One bool mask per Linear weight, ``round(density * numel)`` entries kept at random."""
    masks = {}
    for name, module in model.named_modules():
        if isinstance(module, nn.Linear):
            numel = module.weight.numel()
            flat = torch.zeros(numel, dtype=torch.bool)
            flat[torch.randperm(numel, generator=generator)[: max(1, round(density * numel))]] = True
            masks[f"{name}.weight"] = flat.view_as(module.weight)
    return masks


@torch.no_grad()
def apply_masks(model: nn.Module, masks: dict[str, torch.Tensor]) -> None:
    parameters = dict(model.named_parameters())
    for name, mask in masks.items():
        parameters[name].mul_(mask)


@torch.no_grad()
def prune_and_regrow(model: nn.Module, masks: dict[str, torch.Tensor], rate: float, generator) -> None:
    """Drop the ``rate`` smallest-magnitude kept weights of each layer, regrow as many at random
    among the empty positions (new weights start at zero). Masks change in place."""
    parameters = dict(model.named_parameters())
    for name, mask in masks.items():
        weight, flat = parameters[name], mask.view(-1)
        kept = flat.nonzero().squeeze(1)
        k = math.ceil(rate * kept.numel())
        if k == 0 or kept.numel() == flat.numel():
            continue
        weakest = kept[weight.view(-1)[kept].abs().argsort()[:k]]
        empty = (~flat).nonzero().squeeze(1)
        grown = empty[torch.randperm(empty.numel(), generator=generator)[:k]]
        flat[weakest] = False
        flat[grown] = True
        weight.view(-1)[grown] = 0.0


def tensors(split) -> tuple[torch.Tensor, torch.Tensor]:
    """A dataset split as one input tensor and one label tensor (digits is small)."""
    inputs, targets = zip(*(split[index] for index in range(len(split))))
    return torch.stack(inputs), torch.stack(targets)


@torch.no_grad()
def accuracy(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor) -> float:
    model.eval()
    correct = (model(inputs).argmax(dim=1) == targets).float().mean().item()
    model.train()
    return correct


def main(argv=None) -> None:
    args = parse_args(argv)
    torch.manual_seed(args.seed)
    generator = torch.Generator().manual_seed(args.seed)
    data = load_dataset("digits", flatten=True)
    (train_x, train_y), val, test = tensors(data.train), tensors(data.val), tensors(data.test)
    model = nn.Sequential(
        OrderedDict(
            fc1=nn.Linear(train_x.shape[1], args.width),
            relu1=nn.ReLU(),
            fc2=nn.Linear(args.width, args.width),
            relu2=nn.ReLU(),
            classifier=nn.Linear(args.width, data.num_classes),
        )
    )
    masks = random_masks(model, args.density, generator)
    apply_masks(model, masks)
    optimizer = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9)

    config = {"model": "mlp", "data": "digits", "method": "itop", **vars(args)}  # what `runs` lists
    with fullspectrum.Tracker(
        model, args.out, masks=lambda: masks, every=args.every, config=config, total_steps=args.steps
    ) as tracker:
        for step in range(1, args.steps + 1):
            batch = torch.randint(len(train_x), (args.batch_size,), generator=generator)
            loss = F.cross_entropy(model(train_x[batch]), train_y[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            apply_masks(model, masks)
            if step % args.delta_t == 0 and step < args.steps:
                prune_and_regrow(model, masks, args.prune_rate, generator)  # seen by the tracker
            tracker.step(step, loss=loss.item())
            if step % args.every == 0:
                tracker.log_eval("val", accuracy=accuracy(model, *val))
        test_accuracy = accuracy(model, *test)
        tracker.finish(test_accuracy=test_accuracy)
    print(f"{tracker.path}: test accuracy {test_accuracy:.3f} after {args.steps} steps")


if __name__ == "__main__":
    main()
