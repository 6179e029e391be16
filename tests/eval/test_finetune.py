"""Fine-tuning learns a visible signal and leaves the caller's backbone alone."""

import torch
from torch.utils.data import TensorDataset

from optiml_plugin.eval.backbone import load_backbone
from optiml_plugin.eval.finetune import finetune_classifier, predict_scores
from optiml_plugin.eval.metrics import auroc_per_class


def _bright_or_dark(n: int, seed: int) -> TensorDataset:
    g = torch.Generator().manual_seed(seed)
    labels = (torch.rand(n, 1, generator=g) < 0.5).float()
    images = (
        torch.randn(n, 3, 32, 32, generator=g) * 0.3 + (2 * labels - 1)[..., None, None]
    )
    return TensorDataset(images, labels)


def test_finetuning_learns_a_visible_signal() -> None:
    torch.manual_seed(0)
    backbone = load_backbone(None, "resnet18")
    before = {k: v.clone() for k, v in backbone.state_dict().items()}
    model = finetune_classifier(backbone, _bright_or_dark(48, 0), 1, epochs=3,
                                lr=1e-3, batch_size=16, seed=0)  # fmt: skip
    scores, labels = predict_scores(model, _bright_or_dark(32, 1))
    assert auroc_per_class(scores, labels, ["bright"])["mean"] > 0.9
    for k, v in backbone.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert not torch.equal(model.backbone.conv1.weight, backbone.conv1.weight)
