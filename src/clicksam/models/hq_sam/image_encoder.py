"""SAM's ViT image encoder, also returning the early feature HQ-SAM fuses into its HQ mask."""
from __future__ import annotations

import torch

from clicksam.models.image_encoder import ImageEncoderViT


class HQImageEncoderViT(ImageEncoderViT):
    """:class:`~clicksam.models.image_encoder.ImageEncoderViT` (same weights) with
    :meth:`forward_features`."""

    def forward_features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """B×3×S×S normalised, padded image -> (embedding B×256×S/16×S/16, early feature
        B×embed_dim×S/16×S/16: the output of the first global-attention block, HQ-SAM's
        ``interm_embeddings[0]``)."""
        x = self.patch_embed(x)
        if self.pos_embed is not None:
            x = x + self.pos_embed
        early = None
        for block in self.blocks:
            x = block(x)
            if early is None and block.window_size == 0:
                early = x
        if early is None:
            raise ValueError("HQ-SAM reads the output of the first global-attention block, and this encoder has none")
        return self.neck(x.permute(0, 3, 1, 2)).contiguous(), early.permute(0, 3, 1, 2)
