"""Train the built-in reference models on the CIFAR-10 JPEG copy and write their weights.

    python scripts/train_reference.py --archive ../shared/data/cifar10-jpg.tar.gz \
        --out nnviz_report/weights [--device cuda] [--models lenet,resnet20]

Reads the ImageFolder-layout train and test splits from the archive, keeps them as uint8
tensors on the training device and augments there (random crop with 4-pixel padding,
horizontal flip), so that the GPU is not starved by JPEG decoding. Writes plain
state_dicts (``<name>.pt``), an early resnet20 checkpoint for compare reports
(``resnet20_early.pt``), and ``training.json`` with the test accuracy of each model.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from nnviz_report.zoo import BUILTIN_MODELS, CIFAR10_MEAN, CIFAR10_STD  # noqa: E402

RECIPES = {
    # epochs, batch size, peak learning rate, weight decay. The shipped resnet20 was trained with
    # exactly this recipe on a 2-core CPU with --bf16 (about 55 s per epoch, 88.7 % on the JPEG
    # test split); the early checkpoint is its epoch 2.
    "lenet": (40, 128, 0.05, 5e-4),
    "resnet20": (70, 128, 0.1, 5e-4),
}
EARLY_EPOCHS = 2


def read_split(root: Path) -> tuple[torch.Tensor, torch.Tensor]:
    classes = sorted(p.name for p in root.iterdir() if p.is_dir())
    images, labels = [], []
    for label, name in enumerate(classes):
        for path in sorted((root / name).iterdir()):
            with Image.open(path) as img:
                images.append(np.asarray(img.convert("RGB"), dtype=np.uint8))
            labels.append(label)
    x = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous()
    return x, torch.tensor(labels)


def normalise(x_uint8: torch.Tensor) -> torch.Tensor:
    mean = torch.tensor(CIFAR10_MEAN, device=x_uint8.device).view(1, 3, 1, 1)
    std = torch.tensor(CIFAR10_STD, device=x_uint8.device).view(1, 3, 1, 1)
    return (x_uint8.float() / 255.0 - mean) / std


def augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    n = x.shape[0]
    padded = nn.functional.pad(x, (4, 4, 4, 4))
    dx = torch.randint(0, 9, (n,), generator=gen, device=x.device)
    dy = torch.randint(0, 9, (n,), generator=gen, device=x.device)
    rows = (dy.view(n, 1) + torch.arange(32, device=x.device)).view(n, 1, 32, 1)
    cols = (dx.view(n, 1) + torch.arange(32, device=x.device)).view(n, 1, 1, 32)
    batch_idx = torch.arange(n, device=x.device).view(n, 1, 1, 1)
    chan_idx = torch.arange(3, device=x.device).view(1, 3, 1, 1)
    cropped = padded[batch_idx, chan_idx, rows, cols]
    flip = torch.rand(n, generator=gen, device=x.device) < 0.5
    return torch.where(flip.view(n, 1, 1, 1), cropped.flip(3), cropped)


@torch.no_grad()
def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    model.eval()
    correct = 0
    for start in range(0, len(x), 1000):
        logits = model(normalise(x[start : start + 1000]))
        correct += int((logits.argmax(1) == y[start : start + 1000]).sum())
    return correct / len(x)


def state_dict_cpu(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().clone().contiguous() for k, v in model.state_dict().items()}


def train(
    name: str, data: dict[str, torch.Tensor], out: Path, device: torch.device, bf16: bool = False,
    epochs_override: int | None = None, lr_override: float | None = None, init: Path | None = None,
) -> dict[str, float]:
    epochs, batch, lr, wd = RECIPES[name]
    epochs = epochs_override or epochs
    lr = lr_override or lr
    # bf16: channels_last + bfloat16 autocast for the training steps (about 2x faster on a
    # CPU with AMX); weights stay fp32 and the reported accuracies are measured in fp32.
    memory_format = torch.channels_last if bf16 else torch.contiguous_format
    torch.manual_seed(0)
    gen = torch.Generator(device=device).manual_seed(0)
    model = BUILTIN_MODELS[name][0]()
    if init is not None:
        model.load_state_dict(torch.load(init, map_location="cpu", weights_only=True))
    model = model.to(device, memory_format=memory_format)
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, nesterov=True, weight_decay=wd)
    steps_per_epoch = math.ceil(len(data["xtr"]) / batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=lr, total_steps=epochs * steps_per_epoch, pct_start=0.15
    )
    loss_fn = nn.CrossEntropyLoss()
    result: dict[str, float] = {}
    for epoch in range(1, epochs + 1):
        start = time.perf_counter()
        model.train()
        order = torch.randperm(len(data["xtr"]), generator=gen, device=device)
        for i in range(steps_per_epoch):
            idx = order[i * batch : (i + 1) * batch]
            inputs = normalise(augment(data["xtr"][idx], gen)).contiguous(memory_format=memory_format)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                logits = model(inputs)
                loss = loss_fn(logits, data["ytr"][idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
        acc = accuracy(model, data["xte"], data["yte"])
        print(f"{name} epoch {epoch}/{epochs} loss {loss.item():.3f} test {acc:.4f} "
              f"({time.perf_counter() - start:.1f}s)", flush=True)
        if name == "resnet20" and epoch == EARLY_EPOCHS and init is None:
            torch.save(state_dict_cpu(model), out / "resnet20_early.pt")
            result["resnet20_early_test_accuracy"] = acc
    torch.save(state_dict_cpu(model), out / f"{name}.pt")
    result[f"{name}_test_accuracy"] = accuracy(model, data["xte"], data["yte"])
    result[f"{name}_epochs"] = epochs
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archive", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--models", default="lenet,resnet20")
    parser.add_argument("--epochs", type=int, help="override the recipe's number of epochs")
    parser.add_argument("--lr", type=float, help="override the recipe's peak learning rate")
    parser.add_argument("--init", type=Path, help="start from this state_dict (a second, gentler cycle)")
    parser.add_argument("--bf16", action="store_true",
                        help="train with channels_last + bfloat16 autocast (for CPUs with AMX)")
    args = parser.parse_args()
    device = torch.device(args.device)
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        with tarfile.open(args.archive) as tar:
            tar.extractall(tmp, filter="data")
        root = next(p for p in Path(tmp).rglob("train") if p.is_dir()).parent
        xtr, ytr = read_split(root / "train")
        xte, yte = read_split(root / "test")
    data = {"xtr": xtr.to(device), "ytr": ytr.to(device), "xte": xte.to(device), "yte": yte.to(device)}
    print(f"train {tuple(xtr.shape)} test {tuple(xte.shape)} on {device}", flush=True)
    summary: dict[str, object] = {
        "torch": torch.__version__,
        "device": str(device),
        "precision": "bf16-autocast" if args.bf16 else "fp32",
    }
    for name in args.models.split(","):
        summary.update(train(name, data, args.out, device, args.bf16, args.epochs, args.lr, args.init))
        (args.out / "training.json").write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    print(json.dumps(summary, indent=2, sort_keys=True))


if __name__ == "__main__":
    main()
