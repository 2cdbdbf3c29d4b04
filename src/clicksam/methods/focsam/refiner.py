"""FocSAM's FocusRefiner: refocus SAM's image embedding on the object (SPEC §4).

State-dict keys are those of the official ``refine_head`` without the prefix, so the released
FocSAM ViT-H weights load strictly.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from clicksam.methods.focsam.focus import focus_cells
from clicksam.methods.focsam.layers import QueryUpdate, WindowUpdate


def _partition(x: Tensor, window: int) -> Tensor:
    """B×C×H×W -> (B·nh·nw)×C×window×window, windows in row-major order per image."""
    batch, dim, height, width = x.shape
    nh, nw = height // window, width // window
    x = x.view(batch, dim, nh, window, nw, window).permute(0, 2, 4, 1, 3, 5)
    return x.reshape(batch * nh * nw, dim, window, window)


def _unpartition(windows: Tensor, batch: int, height: int, width: int) -> Tensor:
    """Inverse of :func:`_partition`."""
    _, dim, window, _ = windows.shape
    nh, nw = height // window, width // window
    x = windows.view(batch, nh, nw, dim, window, window).permute(0, 3, 1, 4, 2, 5)
    return x.reshape(batch, dim, height, width)


class RefineBlock(nn.Module):
    """One Dwin-MSA block: windows (plain or cyclically shifted by half a window) read the query
    and are rewritten; the query becomes the mean of the per-window queries, optionally rescaled
    by the learned selected-fraction factor s = exp(w·(−log p) + b).

    Parameters: ``img2cls`` (:class:`QueryUpdate`), ``cls2img`` (:class:`WindowUpdate`) and, for
    all blocks but the last, ``cls_scale_proj`` (Linear(1, 1), initialised w = 1, b = 0).
    """

    def __init__(self, embed_dim: int, num_heads: int, mlp_ratio: float, window_size: int,
                 shifted: bool, query_scale: bool) -> None:
        super().__init__()
        self.window_size = window_size
        self.shift = window_size // 2 if shifted else 0
        self.img2cls = QueryUpdate(embed_dim, num_heads, mlp_ratio)
        self.cls2img = WindowUpdate(embed_dim, num_heads)
        self.cls_scale_proj: nn.Linear | None = None
        if query_scale:
            self.cls_scale_proj = nn.Linear(1, 1)
            nn.init.ones_(self.cls_scale_proj.weight)
            nn.init.zeros_(self.cls_scale_proj.bias)

    def forward(self, x: Tensor, query: Tensor, cells: Tensor) -> tuple[Tensor, Tensor]:
        """x B×C×H×W, query B×1×C, cells B×H×W bool -> (x B×C×H×W, query B×1×C)."""
        batch, dim, height, width = x.shape
        if self.shift:
            x = torch.roll(x, shifts=(-self.shift, -self.shift), dims=(2, 3))
            cells = torch.roll(cells, shifts=(-self.shift, -self.shift), dims=(1, 2))
        windows = _partition(x, self.window_size)
        per_image = windows.shape[0] // batch
        selected = _partition(cells[:, None].float(), self.window_size).flatten(1).amax(dim=1) > 0
        index = torch.nonzero(selected).squeeze(1)
        queries = query.repeat_interleave(per_image, dim=0)  # (B·n)×1×C

        if index.numel():
            chosen = windows.index_select(0, index)
            tokens = chosen.flatten(2).transpose(1, 2).contiguous()  # W×N×C
            chosen_q = self.img2cls(queries.index_select(0, index), tokens)
            chosen = self.cls2img(chosen, chosen_q)
            windows = windows.index_copy(0, index, chosen)
            queries = queries.index_copy(0, index, chosen_q)

        x = _unpartition(windows, batch, height, width)
        if self.shift:
            x = torch.roll(x, shifts=(self.shift, self.shift), dims=(2, 3))
        new_query = queries.view(batch, per_image, dim).mean(dim=1, keepdim=True)
        if self.cls_scale_proj is not None:
            fraction = selected.view(batch, per_image).to(x.dtype).mean(dim=1).clamp(min=1e-2)
            scale = self.cls_scale_proj(-fraction.log().view(batch, 1, 1)).exp()  # B×1×1
            new_query = scale * (new_query - query) + query
        return x, new_query


class FocusRefiner(nn.Module):
    """FocSAM's refiner: Dwin-MSA blocks on the focus windows of the embedding, guided by the
    decoder's single-mask token.

    Args:
        embed_dim: channels of the image embedding and of the token (256).
        depth: number of blocks (12); even blocks use plain windows, odd blocks shifted ones.
        num_heads: attention heads (8).
        mlp_ratio: hidden size of the query MLP relative to ``embed_dim`` (4.0).
        window_size: window side in embedding cells (16).
        expand_ratio: default focus-box expansion about its centre (1.4 on both axes).
        frame_size: side of the padded input frame the coarse logits cover (1024).

    Example:
        >>> refiner = FocusRefiner().eval()
        >>> out = refiner(torch.zeros(1, 256, 64, 64), torch.zeros(1, 1, 256, 256), torch.zeros(1, 1, 256))
        >>> tuple(out.shape)
        (1, 256, 64, 64)
    """

    def __init__(self, embed_dim: int = 256, depth: int = 12, num_heads: int = 8, mlp_ratio: float = 4.0,
                 window_size: int = 16, expand_ratio: float = 1.4, frame_size: int = 1024) -> None:
        super().__init__()
        if depth < 1 or window_size < 2:
            raise ValueError(f"depth must be >= 1 and window_size >= 2, got {depth} and {window_size}")
        self.embed_dim = embed_dim
        self.window_size = window_size
        self.expand_ratio = float(expand_ratio)
        self.frame_size = frame_size
        self.embed_proj = nn.Conv2d(embed_dim, embed_dim, kernel_size=1)
        self.token_proj = nn.Linear(embed_dim, embed_dim)
        self.blocks = nn.ModuleList(
            RefineBlock(embed_dim, num_heads, mlp_ratio, window_size, shifted=i % 2 == 1, query_scale=i < depth - 1)
            for i in range(depth)
        )

    def forward(
        self,
        image_embedding: Tensor,
        coarse_logits: Tensor,
        mask_token: Tensor,
        expand_ratio: tuple[float, float] | None = None,
        cells: Tensor | None = None,
    ) -> Tensor:
        """Refocus the embedding.

        Args:
            image_embedding: B×C×H×W SAM embedding (256×64×64); H and W multiples of the window.
            coarse_logits: B×1×h×w coarse low-res logits in the padded frame (256×256).
            mask_token: B×1×C (or B×C) transformer output of the decoder's single-mask token.
            expand_ratio: (height, width) focus-box expansion; default ``(r, r)`` with
                ``r = self.expand_ratio`` (training draws U(1.0, 1.4) per axis, see
                :func:`~clicksam.methods.focsam.focus.draw_expand_ratio`).
            cells: optional B×H×W bool cells to process, overriding the box from the logits.

        Returns:
            B×C×H×W refined embedding; cells of unselected windows hold ``embed_proj(F)``.
        """
        x = image_embedding
        if x.ndim != 4 or x.shape[1] != self.embed_dim:
            raise ValueError(f"image_embedding must be B×{self.embed_dim}×H×W, got {tuple(x.shape)}")
        batch, _, height, width = x.shape
        if height % self.window_size or width % self.window_size:
            raise ValueError(f"embedding size {height}×{width} is not a multiple of the window {self.window_size}")
        if mask_token.ndim == 2:
            mask_token = mask_token[:, None]
        if mask_token.shape != (batch, 1, self.embed_dim):
            raise ValueError(f"mask_token must be {batch}×1×{self.embed_dim}, got {tuple(mask_token.shape)}")
        if cells is None:
            if coarse_logits.ndim != 4 or coarse_logits.shape[:2] != (batch, 1):
                raise ValueError(f"coarse_logits must be {batch}×1×h×w, got {tuple(coarse_logits.shape)}")
            if width != height:
                raise ValueError(f"the focus box needs a square embedding, got {height}×{width}")
            ratio = expand_ratio if expand_ratio is not None else (self.expand_ratio, self.expand_ratio)
            cells = focus_cells(coarse_logits, ratio, grid_size=height, frame_size=self.frame_size)
        elif cells.shape != (batch, height, width):
            raise ValueError(f"cells must be {batch}×{height}×{width} bool, got {tuple(cells.shape)}")

        # the 1×1 conv as one matmul (PyTorch's CPU conv takes a slow path for it)
        weight = self.embed_proj.weight.view(self.embed_dim, self.embed_dim)
        x = torch.baddbmm(self.embed_proj.bias.view(1, -1, 1), weight.expand(batch, -1, -1), x.flatten(2))
        x = x.view(batch, self.embed_dim, height, width)
        query = self.token_proj(mask_token)
        for block in self.blocks:
            x, query = block(x, query, cells)
        return x
