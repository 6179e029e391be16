"""Cross-Viewpoint Semantics Infusion Module (CV-SIM) of OPTiML [0].

The paper describes CV-SIM as enriching each view's dense features with
"local spatial features and global contextual dependencies across different
viewpoints". We implement it as one pre-norm transformer block over the dense
tokens of view s whose keys and values are view s's own tokens plus context from
view t, with residual connections, so that it starts close to the identity.

Which context view t contributes is the ``mode``:

- ``"global"`` (default): view t's global embedding ``z_t`` as one extra token.
  View s cannot read view t's individual tokens, so it cannot make the OT cost
  small by copying them (the "copy shortcut" of ``OPTiML.md``).
- ``"pointwise"``: like ``"global"``, but each token of view s attends only to
  itself and to ``z_t``, never to the other tokens of its own view. No token can
  read its view's layout from its neighbours, so the block cannot turn a
  view-level statistic (for example the view's mean token) into a per-cell code.
- ``"cross"``: all of view t's dense tokens (full token-to-token cross attention).
  Offered for ablation: the copy shortcut is open.
- ``"none"``: the module returns its input (CV-SIM switched off).

- [0] Singh, Gorade, Mishra. OPTiML: Dense Semantic Invariance Using Optimal
  Transport for Self-Supervised Medical Image Representation. arXiv 2404.11868.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

CVSIM_MODES = ("global", "pointwise", "cross", "none")


class CVSIM(nn.Module):
    """Infuses a view's dense tokens with cross-view context by attention.

    Args:
        dim: Dimension of the dense tokens.
        global_dim: Dimension of the other view's global embedding (mode
            ``"global"``); defaults to ``dim``.
        num_heads: Attention heads; must divide ``dim``.
        mode: ``"global"``, ``"pointwise"``, ``"cross"`` or ``"none"`` (see the
            module docstring).
        mlp_ratio: Width of the feed-forward layer relative to ``dim``.

    Examples:
        >>> cvsim = CVSIM(dim=256, global_dim=1024)
        >>> q_s = cvsim(u_s, other_global=z_t)      # u_s: (B, H, W, 256)
        >>> q_t = cvsim(u_t, other_global=z_s)
    """

    def __init__(
        self,
        dim: int,
        global_dim: int | None = None,
        num_heads: int = 8,
        mode: str = "global",
        mlp_ratio: float = 2.0,
    ) -> None:
        super().__init__()
        if mode not in CVSIM_MODES:
            raise ValueError(f"mode must be one of {CVSIM_MODES}, got {mode!r}.")
        if dim % num_heads != 0:
            raise ValueError(f"num_heads={num_heads} must divide dim={dim}.")
        self.mode = mode
        self.norm_query = nn.LayerNorm(dim)
        self.norm_context = nn.LayerNorm(dim)
        self.global_proj = nn.Linear(global_dim or dim, dim)
        self.attention = nn.MultiheadAttention(dim, num_heads, batch_first=True)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(
            nn.LayerNorm(dim), nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim)
        )
        # Zero-initialised output layers: the block starts as the identity map.
        nn.init.zeros_(self.attention.out_proj.weight)
        nn.init.zeros_(self.attention.out_proj.bias)
        nn.init.zeros_(self.mlp[-1].weight)
        nn.init.zeros_(self.mlp[-1].bias)

    def forward(
        self,
        tokens: Tensor,
        other_global: Tensor | None = None,
        other_tokens: Tensor | None = None,
    ) -> Tensor:
        """Returns the infused tokens, same shape as ``tokens``.

        Args:
            tokens: Dense tokens of this view, (B, H, W, dim) or (B, N, dim).
            other_global: The other view's global embedding (B, global_dim);
                required in modes ``"global"`` and ``"pointwise"``.
            other_tokens: The other view's dense tokens, (B, ..., dim); required in
                mode ``"cross"``.
        """
        if self.mode == "none":
            return tokens
        shape = tokens.shape
        x = tokens.reshape(shape[0], -1, shape[-1])
        query = self.norm_query(x)
        if self.mode in ("global", "pointwise"):
            if other_global is None:
                raise ValueError(
                    f"CVSIM(mode={self.mode!r}) needs other_global (B, D)."
                )
            extra = self.global_proj(other_global).unsqueeze(1)
        else:
            if other_tokens is None:
                raise ValueError("CVSIM(mode='cross') needs other_tokens (B, ..., D).")
            extra = other_tokens.reshape(shape[0], -1, shape[-1])
        if self.mode == "pointwise":
            # One attention problem per token: keys are the token and z_t only.
            b, n, d = x.shape
            context = torch.stack([x, extra.expand(b, n, d)], dim=2)
            context = self.norm_context(context).reshape(b * n, 2, d)
            attended, _ = self.attention(
                query.reshape(b * n, 1, d), context, context, need_weights=False
            )
            attended = attended.reshape(b, n, d)
        else:
            context = self.norm_context(torch.cat([x, extra], dim=1))
            attended, _ = self.attention(query, context, context, need_weights=False)
        x = x + attended
        x = x + self.mlp(x)
        return x.reshape(shape)
