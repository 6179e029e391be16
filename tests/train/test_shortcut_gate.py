"""The positional-shortcut gate on a short phantom pretraining.

The old defaults (token statistics, no centring, absolute epsilon, no flips, no
grid term) learn tokens that encode only their cell's position; the defaults
must not. The previous defaults (no cross-image decorrelation, global weight
0.25) learn an image-modulated position code instead; the defaults must not.
All are trained here under identical conditions, except that the old and the
previous defaults keep their upright views (rotations up to 10 degrees; the
defaults rotate up to 180), and diagnosed on held-out phantom pairs
(optiml_plugin.diagnostics).
"""

import pytest
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader

from optiml_plugin.data.phantom import PhantomDataset
from optiml_plugin.diagnostics import diagnose
from optiml_plugin.train.diagnostics_callback import view_pairs
from optiml_plugin.train.module import OPTiMLModule
from optiml_plugin.transforms import CVSIMTransform

# The defaults before the cross-image decorrelation term (README, "An
# image-modulated position code").
UNDECORRELATED = {
    "image_decorrelation": 0.0,
    "global_weight": 0.25,
    "plan_contrast": 0.0,
}
OLD_DEFAULTS = {"dense_statistics": "tokens", "center": "none",
                "epsilon_scale": "absolute", "position_weight": 0.0,
                **UNDECORRELATED}  # fmt: skip
STEPS = 40


def _train_and_diagnose(
    loss: dict, hflip: float, degrees: float | None = None
) -> dict[str, float]:
    pl.seed_everything(0)
    views = {} if degrees is None else {"degrees": degrees}
    transform = CVSIMTransform(size=128, hf_prob=hflip, **views)
    data = PhantomDataset(num_images=STEPS * 16, size=160, seed=0, transform=transform)
    module = OPTiMLModule(
        model={"backbone": "resnet18", "global_dim": 128, "global_hidden_dim": 128,
               "dense_dim": 64, "dense_hidden_dim": 128, "cvsim_heads": 4},
        loss=loss, optimizer="adamw", lr=0.01, weight_decay=0.05, warmup_epochs=0.25,
        batch_size=16,
    )  # fmt: skip
    trainer = pl.Trainer(max_steps=STEPS, accelerator="cpu", logger=False,
                         enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False)  # fmt: skip
    trainer.fit(module, DataLoader(data, batch_size=16, shuffle=True, drop_last=True))
    held_out = PhantomDataset(num_images=32, size=160, seed=99, transform=transform)
    return diagnose(module.model, module.criterion, *view_pairs(held_out, range(32), 1))


@pytest.fixture(scope="module")
def runs() -> dict[str, dict[str, float]]:
    torch.set_num_threads(max(1, torch.get_num_threads()))
    return {
        "old": _train_and_diagnose(OLD_DEFAULTS, hflip=0.0, degrees=10.0),
        "default": _train_and_diagnose({}, hflip=0.5),
        "undecorrelated": _train_and_diagnose(UNDECORRELATED, hflip=0.5, degrees=10.0),
    }


def test_old_defaults_learn_the_position_shortcut(runs) -> None:
    old = runs["old"]
    assert old["position_share"] > 0.9
    assert old["same_index_rate_different"] > 0.8
    assert old["plan_accuracy"] - old["same_index_accuracy"] < 0.05


def test_defaults_do_not(runs) -> None:
    d = runs["default"]
    assert d["position_share"] < 0.7
    assert d["same_index_rate_different"] < 0.5
    assert d["view_mean_share"] < 0.7


def test_without_decorrelation_an_image_modulated_code_remains(runs) -> None:
    # Measured with this harness: 0.83 without the cross-image decorrelation
    # term, 0.21 with it (the defaults; 0.04 untrained on real radiographs).
    assert runs["undecorrelated"]["interaction_share"] > 0.6
    assert runs["default"]["interaction_share"] < 0.4
    assert (
        runs["default"]["view_mean_share"] < runs["undecorrelated"]["view_mean_share"]
    )
