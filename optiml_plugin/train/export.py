"""Export of a pretrained OPTiML backbone: the door between Lightly and OpenMMLab.

The exported file is a plain ``{name: tensor}`` state dict with torchvision's
parameter names (no ``fc``), loadable with ``torch.load(..., weights_only=True)``
into ``torchvision.models.resnet50()`` (``strict=False`` for the missing ``fc``)
and by MMEngine's ``Pretrained`` initialiser. A JSON sidecar records the run's
settings.
"""

from __future__ import annotations

import datetime
import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

BACKBONE_PREFIX = "model.backbone."


def export_backbone(
    model: nn.Module, path: str | Path, settings: dict[str, Any] | None = None
) -> tuple[Path, Path]:
    """Writes ``model.backbone``'s tensors to ``path`` and settings to ``path.json``.

    Args:
        model: An :class:`~optiml_plugin.models.OPTiML` model (or anything with a
            ``backbone`` attribute).
        path: Output ``.pth`` file.
        settings: Run settings to record in the sidecar.

    Returns:
        The paths of the state dict and of the JSON sidecar.
    """
    architecture = getattr(model, "backbone_name", type(model.backbone).__name__)
    return save_backbone(
        model.backbone.state_dict(),
        path,
        architecture,
        settings,
        padding_mode=getattr(model, "padding_mode", "zeros"),
    )


def save_backbone(
    state: dict[str, torch.Tensor],
    path: str | Path,
    architecture: str,
    settings: dict[str, Any] | None = None,
    padding_mode: str = "zeros",
) -> tuple[Path, Path]:
    """Saves a tensor-only state dict and its JSON sidecar (``path`` with ``.json``).

    The sidecar's ``padding_mode`` is the convolutions' padding the weights were
    trained with; :func:`~optiml_plugin.eval.backbone.load_backbone` and
    ``OPTiMLResNet`` read it.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().clone() for k, v in state.items()}
    torch.save(state, path)
    sidecar = path.with_suffix(".json")
    meta = {
        "format": "torchvision state dict (tensors only, no fc)",
        "architecture": architecture,
        "padding_mode": padding_mode,
        "num_tensors": len(state),
        "exported": datetime.datetime.now(datetime.timezone.utc).isoformat(
            timespec="seconds"
        ),
        "torch": torch.__version__,
        "settings": settings or {},
    }
    sidecar.write_text(json.dumps(meta, indent=2, default=str))
    return path, sidecar


def backbone_sidecar(path: str | Path) -> dict[str, Any]:
    """The JSON sidecar beside an exported ``backbone.pth`` ({} when there is none).

    Raises:
        ValueError: The sidecar is not a JSON object.
    """
    sidecar = Path(path).with_suffix(".json")
    if not sidecar.is_file():
        return {}
    try:
        meta = json.loads(sidecar.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{sidecar}: not valid JSON: {err}") from err
    if not isinstance(meta, dict):
        raise ValueError(
            f"{sidecar}: expected a JSON object, got {type(meta).__name__}"
        )
    return meta


def backbone_state_from_checkpoint(
    checkpoint: str | Path, data: dict[str, Any] | None = None
) -> dict[str, torch.Tensor]:
    """Extracts the backbone's tensors (torchvision names) from a Lightning checkpoint.

    Args:
        checkpoint: The checkpoint file (named in errors).
        data: Its already-loaded contents, to avoid reading the file again.

    Raises:
        ValueError: The file has no ``state_dict`` or no ``model.backbone.*`` keys.
    """
    if data is None:
        data = torch.load(checkpoint, map_location="cpu", weights_only=True)
    state = data.get("state_dict") if isinstance(data, dict) else None
    if not isinstance(state, dict):
        raise ValueError(f"{checkpoint}: not a Lightning checkpoint (no 'state_dict')")
    out = {
        k[len(BACKBONE_PREFIX) :]: v
        for k, v in state.items()
        if k.startswith(BACKBONE_PREFIX)
    }
    if not out:
        raise ValueError(
            f"{checkpoint}: no '{BACKBONE_PREFIX}*' keys; is this an OPTiML checkpoint?"
        )
    return out


def export_checkpoint(checkpoint: str | Path, path: str | Path) -> tuple[Path, Path]:
    """Converts an OPTiML Lightning checkpoint into an exported backbone + sidecar."""
    data = torch.load(checkpoint, map_location="cpu", weights_only=True)
    hparams = data.get("hyper_parameters", {})
    architecture = hparams.get("model", {}).get("backbone", "unknown")
    padding_mode = hparams.get("model", {}).get("padding_mode", "zeros")
    settings = {
        "source": str(checkpoint),
        "global_step": data.get("global_step"),
        **hparams,
    }
    return save_backbone(
        backbone_state_from_checkpoint(checkpoint, data),
        path,
        architecture,
        settings,
        padding_mode=padding_mode,
    )


def main(argv: list[str] | None = None) -> int:
    """``optiml-export-backbone CHECKPOINT OUT.pth``: Lightning checkpoint -> backbone."""
    import argparse

    parser = argparse.ArgumentParser(
        prog="optiml-export-backbone",
        description="Export the backbone of an OPTiML Lightning checkpoint as a "
        "tensor-only torchvision state dict plus a JSON sidecar.",
    )
    parser.add_argument(
        "checkpoint", type=Path, help="Lightning .ckpt of OPTiML pretraining"
    )
    parser.add_argument("out", type=Path, help="output .pth file")
    args = parser.parse_args(argv)
    if not args.checkpoint.is_file():
        parser.error(f"{args.checkpoint}: file not found")
    try:
        path, sidecar = export_checkpoint(args.checkpoint, args.out)
    except ValueError as err:
        parser.error(str(err))
    print(f"backbone: {path}\nsettings: {sidecar}")
    return 0
