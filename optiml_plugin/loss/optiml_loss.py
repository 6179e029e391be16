"""The OPTiML objective: optimal-transport alignment of dense embeddings with VICReg
variance and covariance regularisation [0].

For two views s and t of a batch of radiographs, with dense embeddings q_s (B, N, D)
and q_t (B, M, D) (after CV-SIM), optional global embeddings z_s, z_t (B, D') and
the cells' positions p in the original image (the transform's grids):

    r         = q minus its per-position batch mean and its per-image mean
                (``center="double"``)
    C_b[i, j] = 1 - cos(r_s[b, i], r_t[b, j])
    T_b       = Sinkhorn((C_b + position_weight * |p_s[b, i] - p_t[b, j]|^2 / 2) / s_b,
                         epsilon)          (uniform marginals, no gradient)
    L_OT      = mean_b <T_b, C_b + position term>
    X         = mean over views and over pairs of different images k != l of
                cos(r[k], r[l])^2 (each image's centred map flattened)
    dense     = alpha * L_OT + beta * (var(r_s) + var(r_t)) / 2 + eta * (cov(r_s) + cov(r_t))
                + image_decorrelation * X
    global    = VICReg(z_s, z_t) with weights (global_invariance_weight, beta, eta)
    loss      = (1 - global_weight) * dense + global_weight * global

s_b is image b's mean row range of the feature cost (``epsilon_scale="relative"``),
so epsilon is relative to the cost's current spread. The plan has unit total mass,
so <T, C> is the mean matched cost per cell. The variance and covariance terms are
Lightly's VICReg terms, taken over all cells of all images of the centred tokens
r (``dense_statistics="residual"``).

Why these defaults (measured; README, "What OPTiML learns"): with a cosine cost on
raw tokens and statistics over each image's cells, tokens that encode only their
cell's index in the view satisfy the variance terms and match two views at zero
cost, so the plan becomes the same-index plan; statistics across the batch at each
position are satisfied by a code of the image instead. Centring removes both codes
from the cost and the statistics, and the grid term makes the training plan follow
where the anatomy really is (views are flipped independently, so cell i of one view
is often not cell i of the other). Centring keeps one code, an image-level scalar
times a pattern over the cells, which makes the plan between two different images
peak at the same index; the cross-image decorrelation X (weight 25) removes it. With a
global share of 0.9 it met the most gate criteria of the settings screened on real
radiographs, and it raised 5 of 7 frozen-probe metrics over the previous defaults
(no X, global share 0.25), none lower. Like VICReg's reference code we average the two
views' variance terms (the paper writes a sum: set ``beta`` twice as large for that
reading).

- [0] Singh, Gorade, Mishra. OPTiML: Dense Semantic Invariance Using Optimal
  Transport for Self-Supervised Medical Image Representation. arXiv 2404.11868,
  2024 (WACV 2025 as OTCXR).
- [1] Bardes, Ponce, LeCun. VICRegL: Self-Supervised Learning of Local Visual
  Features. NeurIPS 2022.
- [2] Blondel, Martins, Niculae. Learning with Fenchel-Young Losses. JMLR 21,
  2020.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F
from lightly.loss.vicreg_loss import VICRegLoss, covariance_loss, variance_loss
from lightly.utils.dist import gather
from torch import Tensor, nn

from optiml_plugin import ot

TRANSPORTS = ("sinkhorn", "emd", "identity")
DENSE_STATISTICS = ("batch", "tokens", "both", "residual", "residual-batch")
COSTS = ("cosine", "l2")
CENTERINGS = ("none", "batch", "view", "position", "double")
EPSILON_SCALES = ("absolute", "relative")
CONTRAST_CELLS = ("all", "overlap")
# The plan contrast's weight when the grid term is on (README, "Rotations and plan
# contrast"; results/shortcut_study/screen11).
PLAN_CONTRAST = 3.0


class OPTiMLLoss(nn.Module):
    """OPTiML loss (see the module docstring for the formula).

    Args:
        alpha: Weight of the OT alignment term (and default weight of the global
            invariance term).
        beta: Weight of the variance terms.
        eta: Weight of the covariance terms.
        epsilon: Entropic regularisation of the transport problem.
        num_iters: Sinkhorn iterations.
        transport: ``"sinkhorn"`` (default), ``"emd"`` (exact OT, slow reference) or
            ``"identity"`` (cell i matched to cell i: an ablation without OT).
        position_weight: Weight of the spatial term in the cost; needs grids.
        global_weight: Share of the global VICReg loss when global embeddings are
            given (like VICRegL's ``alpha``; default 0.9).
        global_invariance_weight: Weight of the global invariance (MSE) term;
            defaults to ``alpha``.
        dense_statistics: Over what the dense variance and covariance are taken:
            ``"batch"``: across images at each cell position (VICRegL's local
            terms); ``"tokens"``: across the cells of each image, i.e. over the
            point cloud that enters the transport problem; ``"both"``: the mean
            of the two; ``"residual"``: across all cells of all images after
            removing each cell position's batch mean and each image's mean (what
            ``center="double"`` leaves), so that neither a code of the cell's
            position (which token statistics reward) nor a code of the image
            (which batch statistics reward) counts as variance;
            ``"residual-batch"``: the same centred tokens, but across images
            at each cell position (VICRegL's local terms on the residual), so
            that the covariance also sees a code that is one image-level
            scalar times a position pattern (rank one at each position).
        cost: ``"cosine"``: 1 - cos of the (centred) tokens, the paper's cost;
            ``"l2"``: squared Euclidean distance divided by the dimension (the
            MSE of VICRegL's local term), on the (centred) raw tokens.
        center: What is subtracted from the tokens before the cost:
            ``"none"``; ``"batch"``: the mean token of the view over the batch
            and its cells (a common offset); ``"view"``: each view's own mean
            token; ``"position"``: at each cell index, the mean over the batch
            (whatever only says where a cell sits in its view); ``"double"``:
            both of the last two (the interaction of image and position).
        epsilon_scale: ``"absolute"``: ``epsilon`` in cost units;
            ``"relative"``: ``epsilon`` times each image's mean row range of the
            feature cost (max - min over a row, without the spatial term, no
            gradient), so that the plan's sharpness does not depend on the
            features' current scale.
        image_decorrelation: Weight of a term against a pattern over the cells
            that all images share up to a scalar (``s_k * p_i``, which centring
            keeps and which makes the plan between two different images peak at
            the same index): the mean squared cosine between the doubly centred
            token maps (N x D, flattened) of two different images of the batch,
            for each view. Default 25; 0 leaves it out.
        feature_matching: Weight, relative to ``alpha``, of VICRegL's
            feature-based matching [1]: each cell's feature cost to its nearest
            cell of the other view (no spatial term), averaged over the cells of
            both views. 0 (default) leaves it out.
        plan_contrast: Weight, relative to ``alpha``, of ``<T - T_f, C_f>``:
            the training plan T (with the grid term) minus the plan T_f from the
            feature cost C_f alone, both without gradient. It is the gradient of
            the Fenchel-Young loss of entropic OT [2] with T as the target: it
            pulls the cells that T matches together and pushes apart the cells
            that the features alone match but T does not, so the features learn
            to find the corresponding cell without the grids. Needs
            ``position_weight > 0``; 0 leaves it out. None (default): 3 with
            the grid term, 0 without it (``position_weight=0``): measured
            together with rotations up to 180 degrees in the views (README,
            "Rotations and plan contrast").
        plan_contrast_cells: Which cells the plan contrast counts: ``"all"``
            (default), or ``"overlap"``: only a cell whose true match lies inside
            the other view (nearest cell of the other view, in the original
            image, closer than one cell of it; :func:`inside_other_view`): the
            rows of view s's cells and the columns of view t's cells that have
            one, each weighted by one half. A cell outside the other view has no
            true match; balanced OT still sends its mass to the nearest cells by
            the grids, and contrasting that teaches the features where a cell
            sits rather than what it shows.
        gather_distributed: Gather embeddings from all processes before the
            variance and covariance terms (as Lightly's losses do; for
            ``"residual"`` the centring of the statistics then uses the global
            batch, while the cost is centred over each process's own batch).
        eps: Numerical epsilon of the variance term.

    Examples:
        >>> loss_fn = OPTiMLLoss()
        >>> out = model(view_a, view_b)   # OPTiML model
        >>> loss = loss_fn(out.dense_a, out.dense_b, out.global_a, out.global_b,
        ...                grid_a=grid_a, grid_b=grid_b)
    """

    def __init__(
        self,
        alpha: float = 25.0,
        beta: float = 25.0,
        eta: float = 1.0,
        epsilon: float = 0.05,
        num_iters: int = 100,
        transport: str = "sinkhorn",
        position_weight: float = 20.0,
        global_weight: float = 0.9,
        global_invariance_weight: float | None = None,
        dense_statistics: str = "residual",
        cost: str = "cosine",
        center: str = "double",
        epsilon_scale: str = "relative",
        image_decorrelation: float = 25.0,
        feature_matching: float = 0.0,
        plan_contrast: float | None = None,
        plan_contrast_cells: str = "all",
        gather_distributed: bool = False,
        eps: float = 1e-4,
    ) -> None:
        super().__init__()
        if transport not in TRANSPORTS:
            raise ValueError(
                f"transport must be one of {TRANSPORTS}, got {transport!r}."
            )
        if dense_statistics not in DENSE_STATISTICS:
            raise ValueError(
                f"dense_statistics must be one of {DENSE_STATISTICS}, got {dense_statistics!r}."
            )
        for name, value, allowed in (
            ("cost", cost, COSTS),
            ("center", center, CENTERINGS),
            ("epsilon_scale", epsilon_scale, EPSILON_SCALES),
            ("plan_contrast_cells", plan_contrast_cells, CONTRAST_CELLS),
        ):
            if value not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {value!r}.")
        if not 0.0 <= global_weight <= 1.0:
            raise ValueError(f"global_weight must lie in [0, 1], got {global_weight}.")
        if plan_contrast is None:
            plan_contrast = PLAN_CONTRAST if position_weight > 0 else 0.0
        if plan_contrast > 0 and position_weight <= 0:
            raise ValueError(
                "plan_contrast compares the feature-only plan with the training "
                "plan, which needs the grid term: set position_weight > 0."
            )
        if gather_distributed and not dist.is_available():
            raise ValueError(
                "gather_distributed=True but torch.distributed is unavailable."
            )
        self.alpha = alpha
        self.beta = beta
        self.eta = eta
        self.epsilon = epsilon
        self.num_iters = num_iters
        self.transport = transport
        self.position_weight = position_weight
        self.global_weight = global_weight
        self.dense_statistics = dense_statistics
        self.cost = cost
        self.center = center
        self.epsilon_scale = epsilon_scale
        self.image_decorrelation = image_decorrelation
        self.feature_matching = feature_matching
        self.plan_contrast = plan_contrast
        self.plan_contrast_cells = plan_contrast_cells
        self.gather_distributed = gather_distributed
        self.eps = eps
        inv = alpha if global_invariance_weight is None else global_invariance_weight
        self.global_loss = VICRegLoss(
            lambda_param=inv,
            mu_param=beta,
            nu_param=eta,
            gather_distributed=gather_distributed,
            eps=eps,
        )

    def forward(
        self,
        dense_a: Tensor,
        dense_b: Tensor,
        global_a: Tensor | None = None,
        global_b: Tensor | None = None,
        grid_a: Tensor | None = None,
        grid_b: Tensor | None = None,
    ) -> Tensor:
        """Returns the OPTiML loss (a scalar).

        Args:
            dense_a: Dense embeddings of view a, (B, H, W, D) or (B, N, D).
            dense_b: Dense embeddings of view b, (B, H', W', D) or (B, M, D).
            global_a: Global embeddings of view a, (B, D'), or None.
            global_b: Global embeddings of view b, (B, D'), or None.
            grid_a: Original-image positions of view a's cells, (B, H, W, 2) or
                (B, N, 2); needed when ``position_weight > 0``.
            grid_b: Same for view b.
        """
        return self.terms(dense_a, dense_b, global_a, global_b, grid_a, grid_b)["loss"]

    def terms(
        self,
        dense_a: Tensor,
        dense_b: Tensor,
        global_a: Tensor | None = None,
        global_b: Tensor | None = None,
        grid_a: Tensor | None = None,
        grid_b: Tensor | None = None,
    ) -> dict[str, Tensor]:
        """Returns the loss and its unweighted terms (for logging).

        Keys: ``loss``, ``ot``, ``dense_var``, ``dense_cov``; ``dense_xcorr``,
        ``dense_nn`` and ``dense_contrast`` when those terms are on; ``global``
        with global embeddings. Arguments as in :meth:`forward`.
        """
        qa, qb = _tokens(dense_a, "dense_a"), _tokens(dense_b, "dense_b")
        _check_pair(qa, qb, global_a, global_b)
        feats, cost = self._costs(qa, qb, grid_a, grid_b, features_only=False)
        plan = self._plan(feats, cost)
        ot_loss = ot.transport_cost(plan, cost).mean()

        var, cov = self._dense_var_cov(qa, qb)
        dense = self.alpha * ot_loss + self.beta * var + self.eta * cov
        out = {"ot": ot_loss, "dense_var": var, "dense_cov": cov}
        if self.image_decorrelation > 0:
            xcorr = 0.5 * (_image_correlation(qa) + _image_correlation(qb))
            dense = dense + self.image_decorrelation * xcorr
            out["dense_xcorr"] = xcorr
        if self.feature_matching > 0:
            nearest = 0.5 * (feats.amin(dim=2).mean() + feats.amin(dim=1).mean())
            dense = dense + self.alpha * self.feature_matching * nearest
            out["dense_nn"] = nearest
        if self.plan_contrast > 0:
            # Fenchel-Young loss of entropic OT [2]: its gradient in the feature
            # cost is (T - T_f), both plans fixed; zero when the features alone
            # give the training plan.
            diff = plan - self._plan(feats, feats)
            if self.plan_contrast_cells == "overlap":
                pa, pb = _tokens(grid_a, "grid_a"), _tokens(grid_b, "grid_b")
                rows = inside_other_view(pa, pb).to(diff.dtype)
                cols = inside_other_view(pb, pa).to(diff.dtype)
                diff = diff * 0.5 * (rows[:, :, None] + cols[:, None, :])
            contrast = ot.transport_cost(diff, feats).mean()
            dense = dense + self.alpha * self.plan_contrast * contrast
            out["dense_contrast"] = contrast
        if global_a is None:
            out["loss"] = dense
            return out
        glob = self.global_loss(global_a, global_b)
        out["global"] = glob
        out["loss"] = (1.0 - self.global_weight) * dense + self.global_weight * glob
        return out

    def _dense_var_cov(self, qa: Tensor, qb: Tensor) -> tuple[Tensor, Tensor]:
        """VICReg variance and covariance of the dense tokens (see dense_statistics)."""
        stats = []
        gathered = (
            self.gather_distributed
            and dist.is_initialized()
            and dist.get_world_size() > 1
        )
        if gathered and self.dense_statistics != "tokens":
            qa, qb = torch.cat(gather(qa), 0), torch.cat(gather(qb), 0)
        if self.dense_statistics == "residual":
            # Over all cells of all images, after removing each position's and
            # each image's mean: neither a position code nor an image code has
            # any variance here, only content that varies within and across images.
            ra, rb = _center(qa, "double"), _center(qb, "double")
            stats.append((ra.reshape(-1, ra.shape[-1]), rb.reshape(-1, rb.shape[-1])))
        if self.dense_statistics == "residual-batch":
            stats.append((_center(qa, "double"), _center(qb, "double")))
        if self.dense_statistics in ("batch", "both"):
            stats.append((qa, qb))
        if self.dense_statistics in ("tokens", "both"):
            # Cells first: the statistics are taken over each image's tokens.
            stats.append((qa.transpose(0, 1), qb.transpose(0, 1)))
        var = sum(
            0.5 * (variance_loss(x, self.eps) + variance_loss(y, self.eps))
            for x, y in stats
        )
        cov = sum(covariance_loss(x) + covariance_loss(y) for x, y in stats)
        return var / len(stats), cov / len(stats)

    def cost_tokens(self, dense_a: Tensor, dense_b: Tensor) -> tuple[Tensor, Tensor]:
        """Returns the tokens (B, N, D), (B, M, D) as the cost sees them: float32
        (float64 for float64 input), centred as ``center`` says and, for the
        cosine cost, L2-normalised."""
        qa, qb = _tokens(dense_a, "dense_a"), _tokens(dense_b, "dense_b")
        dtype = torch.promote_types(qa.dtype, torch.float32)
        qa, qb = _center(qa.to(dtype), self.center), _center(qb.to(dtype), self.center)
        if self.cost == "cosine":
            qa = F.normalize(qa, dim=-1, eps=1e-8)
            qb = F.normalize(qb, dim=-1, eps=1e-8)
        return qa, qb

    def cost_matrix(
        self,
        dense_a: Tensor,
        dense_b: Tensor,
        grid_a: Tensor | None = None,
        grid_b: Tensor | None = None,
        features_only: bool = False,
    ) -> Tensor:
        """Returns the transport cost (B, N, M) in float32 (float64 for float64
        input), computed outside autocast.

        ``features_only=True`` leaves out the spatial term (for diagnostics: does
        the plan find corresponding cells from the features alone?).
        """
        return self._costs(dense_a, dense_b, grid_a, grid_b, features_only)[1]

    def _costs(
        self,
        dense_a: Tensor,
        dense_b: Tensor,
        grid_a: Tensor | None,
        grid_b: Tensor | None,
        features_only: bool,
    ) -> tuple[Tensor, Tensor]:
        """The feature cost and the full cost (feature cost + spatial term)."""
        with ot.autocast_off(dense_a.device):
            qa, qb = self.cost_tokens(dense_a, dense_b)
            if self.cost == "cosine":
                feats = 1.0 - qa @ qb.transpose(1, 2)
            else:
                feats = torch.cdist(qa, qb).pow(2) / qa.shape[-1]
            if self.position_weight <= 0 or features_only:
                return feats, feats
            if grid_a is None or grid_b is None:
                raise ValueError(
                    f"position_weight={self.position_weight:g} needs grid_a and "
                    "grid_b (CVSIMTransform returns them); set position_weight=0 "
                    "for a plan from the features alone."
                )
            pa, pb = _tokens(grid_a, "grid_a"), _tokens(grid_b, "grid_b")
            if pa.shape[:2] != qa.shape[:2] or pb.shape[:2] != qb.shape[:2]:
                raise ValueError(
                    f"grids {tuple(grid_a.shape)}, {tuple(grid_b.shape)} do not "
                    f"match the dense embeddings {tuple(dense_a.shape)}, "
                    f"{tuple(dense_b.shape)}."
                )
            dist2 = torch.cdist(pa.to(feats.dtype), pb.to(feats.dtype)).pow(2)
            return feats, feats + self.position_weight * 0.5 * dist2

    def transport_plan(
        self,
        dense_a: Tensor,
        dense_b: Tensor,
        grid_a: Tensor | None = None,
        grid_b: Tensor | None = None,
        features_only: bool = False,
    ) -> tuple[Tensor, Tensor]:
        """Returns the plan (no gradient) and the cost (with gradient), (B, N, M)."""
        feats, cost = self._costs(dense_a, dense_b, grid_a, grid_b, features_only)
        return self._plan(feats, cost), cost

    def _plan(self, feats: Tensor, cost: Tensor) -> Tensor:
        """The transport plan (no gradient) for a cost; ``feats`` (the feature
        cost) sets the relative epsilon's scale."""
        with torch.no_grad():
            if self.transport == "sinkhorn":
                scaled = cost.detach()
                if self.epsilon_scale == "relative":
                    rows = feats.amax(dim=2) - feats.amin(dim=2)
                    scaled = scaled / rows.mean(dim=1).clamp(min=1e-6)[:, None, None]
                plan = ot.sinkhorn(scaled, self.epsilon, self.num_iters)
            elif self.transport == "emd":
                plan = ot.emd(cost.detach())
            else:
                b, n, m = cost.shape
                if n != m:
                    raise ValueError(
                        f"transport='identity' needs N == M, got {n}, {m}."
                    )
                eye = torch.eye(n, dtype=cost.dtype, device=cost.device) / n
                plan = eye.expand(b, n, n)
        return plan.to(cost.dtype)


def inside_other_view(grid_s: Tensor, grid_t: Tensor) -> Tensor:
    """Which cells of view s have a true match inside view t, (B, N) bool.

    Cell i of s counts when the nearest cell of t, in the original image (the
    grids, (B, N, 2) and (B, M, 2)), is closer than one cell of t (the median
    distance between neighbouring cells of t).
    """
    ps, pt = grid_s.float(), grid_t.float()
    nearest = torch.cdist(ps, pt).amin(dim=2)
    cell = torch.cdist(pt, pt).topk(2, dim=2, largest=False).values[..., 1]
    return nearest < cell.median(dim=1).values[:, None]


def _image_correlation(q: Tensor) -> Tensor:
    """Mean squared cosine between the doubly centred maps of two images of q."""
    b = q.shape[0]
    r = F.normalize(_center(q.float(), "double").reshape(b, -1), dim=1, eps=1e-8)
    gram = r @ r.T
    off = gram - torch.diag_embed(torch.diagonal(gram))
    return off.pow(2).sum() / (b * (b - 1))


def _center(q: Tensor, how: str) -> Tensor:
    """Subtracts the mean token that ``how`` names from q (B, N, D)."""
    if how in ("position", "double"):
        q = q - q.mean(dim=0, keepdim=True)
    if how in ("view", "double"):
        q = q - q.mean(dim=1, keepdim=True)
    if how == "batch":
        q = q - q.mean(dim=(0, 1), keepdim=True)
    return q


def _tokens(x: Tensor, name: str) -> Tensor:
    """Flattens (B, H, W, D) to (B, H*W, D); checks the rank."""
    if x.dim() == 4:
        return x.reshape(x.shape[0], -1, x.shape[-1])
    if x.dim() == 3:
        return x
    raise ValueError(
        f"{name} must have shape (B, H, W, D) or (B, N, D), got {tuple(x.shape)}."
    )


def _check_pair(
    qa: Tensor, qb: Tensor, global_a: Tensor | None, global_b: Tensor | None
) -> None:
    if qa.shape[0] != qb.shape[0] or qa.shape[-1] != qb.shape[-1]:
        raise ValueError(
            "dense_a and dense_b must share batch size and dimension, got "
            f"{tuple(qa.shape)} and {tuple(qb.shape)}."
        )
    if qa.shape[0] < 2:
        raise ValueError(
            "OPTiMLLoss needs a batch size of at least 2 (the variance and covariance "
            f"terms are batch statistics), got {qa.shape[0]}."
        )
    if (global_a is None) != (global_b is None):
        raise ValueError("Pass both global_a and global_b, or neither.")
    if global_a is not None and global_b is not None:
        if global_a.dim() != 2 or global_a.shape != global_b.shape:
            raise ValueError(
                "global_a and global_b must both have shape (B, D), got "
                f"{tuple(global_a.shape)} and {tuple(global_b.shape)}."
            )
        if global_a.shape[0] != qa.shape[0]:
            raise ValueError(
                f"global batch size {global_a.shape[0]} != dense batch size {qa.shape[0]}."
            )
