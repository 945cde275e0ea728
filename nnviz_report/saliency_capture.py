"""The saliency pass: gradients of each showcase sample's target logit with respect to one layer's
output (for Grad-CAM) and, when asked, the input (for the input gradient).

A second, small pass apart from the capture: it runs on the few showcase samples only, with one
hook on one layer, registered through hooks.py's model_session like every other hook, so the
model comes back exactly as it went in.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch
from torch import Tensor, nn

from .errors import ModelError
from .hooks import model_session


@dataclasses.dataclass
class SaliencyCapture:
    layer: str
    activations: np.ndarray  # (S, C, h, w)
    gradients: np.ndarray  # (S, C, h, w): d target logit / d activation
    input_gradients: np.ndarray | None  # (S, 3, H, W): d target logit / d input; None when not asked for
    probabilities: np.ndarray  # (S, 10)


def capture_saliency(
    model: nn.Module, inputs: Tensor, targets: Tensor, *, layer: str, device: torch.device,
    input_gradients: bool = True,
) -> SaliencyCapture:
    """Gradients of each sample's target logit with respect to ``layer``'s output and, unless
    ``input_gradients`` is False, the input. Without the input gradient the graph starts at the
    layer: nothing before it is recorded or differentiated, which is all Grad-CAM needs."""
    module = dict(model.named_modules()).get(layer)
    if module is None:
        raise ModelError(f"Grad-CAM layer {layer!r} is not a module of the model; pick one from the Activations table")
    store: dict[str, Tensor] = {}

    def hook(_m: nn.Module, _i: object, output: object) -> Tensor | None:
        if not isinstance(output, Tensor) or "activation" in store:
            return None
        store["activation"] = output.detach().clone()
        if input_gradients:
            output.register_hook(lambda grad: store.__setitem__("gradient", grad.detach().clone()))
            return None
        store["start"] = output.detach().requires_grad_(True)
        return store["start"] + 0  # not a leaf, so an in-place layer after this one stays allowed

    with model_session(model, device, param_grads=input_gradients) as hooks:
        if not input_gradients:
            for p in model.parameters():
                p.requires_grad_(False)  # restored when the session ends
        hooks.forward_hook(module, hook)
        x = inputs.to(device).requires_grad_(input_gradients)
        logits = model(x)
        score = logits.gather(1, targets.to(device).view(-1, 1)).sum()
        input_grad = None
        if input_gradients:
            (input_grad,) = torch.autograd.grad(score, x)
        elif "start" in store and score.requires_grad:
            (gradient,) = torch.autograd.grad(score, store["start"], allow_unused=True)
            if gradient is not None:
                store["gradient"] = gradient.detach()
    if "gradient" not in store:
        raise ModelError(f"Grad-CAM layer {layer!r} does not lie on the path to the logits")
    return SaliencyCapture(
        layer=layer,
        activations=store["activation"].cpu().float().numpy(),
        gradients=store["gradient"].cpu().float().numpy(),
        input_gradients=None if input_grad is None else input_grad.detach().cpu().float().numpy(),
        probabilities=torch.softmax(logits.detach().float(), dim=1).cpu().numpy(),
    )
