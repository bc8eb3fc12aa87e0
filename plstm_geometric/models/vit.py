import math

import torch
import torch.nn.functional as F
from torch import Tensor

from .common import check_vision_model_args


class ViT(torch.nn.Module):
    r"""Vision Transformer baseline (Dosovitskiy et al., 2021) built from PyTorch's own transformer layers.

    .. math::
        z_0 = [\,x_{\mathrm{cls}};\ \mathrm{PatchEmbed}(X)\,] + [\,p_{\mathrm{cls}};\ P\,], \qquad
        z_{\ell} = \mathrm{Block}_{\ell}(z_{\ell-1}), \qquad
        \hat{y} = W\,\mathrm{LN}(\mathrm{pool}(z_L)) + b

    with pre-norm blocks :math:`z + \mathrm{MHA}(\mathrm{LN}(z))`, :math:`z + \mathrm{MLP}(\mathrm{LN}(z))`
    (``torch.nn.TransformerEncoderLayer(norm_first=True, activation="gelu")``) and a Conv2d patch embedding
    with kernel and stride ``patch_size``.

    Pooling: ``pool="cls"`` (default, as in ViT/DeiT, the baseline of the pLSTM paper) reads a learned class
    token; ``pool="mean"`` averages the patch tokens (no class token is created).

    Position embedding: ``"learned"`` keeps a table for the ``image_size / patch_size`` grid; an input of
    another size gets that table resized bicubically over the 2D patch grid (the class token's own entry is
    kept), so a model trained at 192 px runs on 384 px images. ``"sincos"`` uses the fixed 2D sine-cosine
    embedding computed for whatever grid the input has.

    Args:
        image_size (int or tuple): training image side (or ``(height, width)``); sets the learned table.
        patch_size (int): patch side; every input side must be a multiple of it.
        in_channels (int): image channels.
        num_classes (int): output logits.
        dim (int): token width.
        heads (int): attention heads (``dim`` must be divisible by it).
        depth (int): transformer blocks.
        mlp_ratio (float): MLP hidden width over ``dim``.
        dropout (float): dropout in attention, MLP and after the embedding.
        pos_embedding (str): ``"learned"`` or ``"sincos"``.
        pool (str): ``"cls"`` or ``"mean"``.

    Shapes:
        input ``[B, in_channels, H, W]`` with ``H, W`` multiples of ``patch_size``; output ``[B, num_classes]``.
    """

    def __init__(
        self,
        image_size,
        patch_size: int,
        in_channels: int,
        num_classes: int,
        dim: int = 192,
        heads: int = 3,
        depth: int = 6,
        mlp_ratio: float = 4.0,
        dropout: float = 0.0,
        pos_embedding: str = "learned",
        pool: str = "cls",
    ):
        super().__init__()
        image_size = check_vision_model_args(image_size, patch_size, in_channels, num_classes, dim, heads, depth)
        if dim % heads:
            raise ValueError(f"dim: expected a multiple of heads={heads}, got {dim}")
        if pos_embedding not in ("learned", "sincos"):
            raise ValueError(f"pos_embedding: expected 'learned' or 'sincos', got {pos_embedding!r}")
        if pos_embedding == "sincos" and dim % 4:
            raise ValueError(f"dim: the 'sincos' position embedding needs a multiple of 4, got {dim}")
        if pool not in ("cls", "mean"):
            raise ValueError(f"pool: expected 'cls' or 'mean', got {pool!r}")

        self.image_size = image_size
        self.patch_size = patch_size
        self.in_channels = in_channels
        self.num_classes = num_classes
        self.dim = dim
        self.heads = heads
        self.depth = depth
        self.pos_embedding_type = pos_embedding
        self.pool = pool
        self.grid_size = (image_size[0] // patch_size, image_size[1] // patch_size)

        self.patch_embedding = torch.nn.Conv2d(in_channels, dim, kernel_size=patch_size, stride=patch_size)
        self.cls_token = torch.nn.Parameter(torch.empty(1, 1, dim)) if pool == "cls" else None
        if pos_embedding == "learned":
            self.pos_embedding = torch.nn.Parameter(torch.empty(1, dim, *self.grid_size))
            self.cls_pos_embedding = torch.nn.Parameter(torch.empty(1, 1, dim)) if pool == "cls" else None
        else:
            self.register_parameter("pos_embedding", None)
            self.register_parameter("cls_pos_embedding", None)
        self.dropout = torch.nn.Dropout(dropout)
        self.blocks = torch.nn.ModuleList(
            torch.nn.TransformerEncoderLayer(
                d_model=dim,
                nhead=heads,
                dim_feedforward=int(dim * mlp_ratio),
                dropout=dropout,
                activation="gelu",
                batch_first=True,
                norm_first=True,
            )
            for _ in range(depth)
        )
        self.norm = torch.nn.LayerNorm(dim)
        self.head = torch.nn.Linear(dim, num_classes)
        self.reset_parameters()

    def reset_parameters(self):
        # Truncated-normal(0.02) weights and zero biases, the usual ViT/DeiT initialisation.
        self.patch_embedding.reset_parameters()
        for module in self.blocks.modules():
            if isinstance(module, torch.nn.Linear):
                torch.nn.init.trunc_normal_(module.weight, std=0.02)
                torch.nn.init.zeros_(module.bias)
            elif isinstance(module, torch.nn.LayerNorm):
                module.reset_parameters()
            elif isinstance(module, torch.nn.MultiheadAttention):
                torch.nn.init.trunc_normal_(module.in_proj_weight, std=0.02)
                torch.nn.init.zeros_(module.in_proj_bias)
        self.norm.reset_parameters()
        torch.nn.init.trunc_normal_(self.head.weight, std=0.02)
        torch.nn.init.zeros_(self.head.bias)
        for parameter in (self.cls_token, self.pos_embedding, self.cls_pos_embedding):
            if parameter is not None:
                torch.nn.init.trunc_normal_(parameter, std=0.02)

    def patch_position_embedding(self, grid_size: tuple[int, int]) -> Tensor:
        """Position embedding ``[1, dim, gh, gw]`` for a patch grid of ``grid_size``."""
        if self.pos_embedding is None:
            return sincos_position_embedding(grid_size, self.dim, self.patch_embedding.weight)
        if tuple(grid_size) == self.grid_size:
            return self.pos_embedding
        return F.interpolate(self.pos_embedding, size=grid_size, mode="bicubic", align_corners=False)

    def forward(self, images: Tensor) -> Tensor:
        if images.dim() != 4 or images.size(1) != self.in_channels:
            raise ValueError(f"images: expected [B, {self.in_channels}, H, W], got {tuple(images.shape)}")
        if images.size(2) % self.patch_size or images.size(3) % self.patch_size:
            raise ValueError(
                f"images: expected height and width multiples of patch_size={self.patch_size}, "
                f"got {tuple(images.shape[2:])}"
            )
        patches = self.patch_embedding(images)  # [B, dim, gh, gw]
        patches = patches + self.patch_position_embedding(tuple(patches.shape[2:]))
        tokens = patches.flatten(2).transpose(1, 2)  # [B, gh * gw, dim]
        if self.cls_token is not None:
            cls = self.cls_token if self.cls_pos_embedding is None else self.cls_token + self.cls_pos_embedding
            tokens = torch.cat([cls.expand(tokens.size(0), -1, -1), tokens], dim=1)
        tokens = self.dropout(tokens)
        for block in self.blocks:
            tokens = block(tokens)
        pooled = tokens[:, 0] if self.pool == "cls" else tokens.mean(dim=1)
        return self.head(self.norm(pooled))

    def __repr__(self) -> str:
        return (
            f"{self.__class__.__name__}(image_size={self.image_size}, patch_size={self.patch_size}, "
            f"in_channels={self.in_channels}, num_classes={self.num_classes}, dim={self.dim}, heads={self.heads}, "
            f"depth={self.depth}, pos_embedding={self.pos_embedding_type}, pool={self.pool})"
        )


def sincos_position_embedding(grid_size: tuple[int, int], dim: int, like: Tensor) -> Tensor:
    r"""Fixed 2D sine-cosine position embedding ``[1, dim, gh, gw]`` (dtype and device of ``like``):
    a quarter of the channels each for :math:`\sin, \cos` of the row and of the column index at
    frequencies :math:`10000^{-k / (dim/4)}`."""
    quarter = dim // 4
    frequency = torch.exp(-math.log(10000.0) * torch.arange(quarter, device=like.device, dtype=torch.float32) / quarter)
    rows = torch.arange(grid_size[0], device=like.device, dtype=torch.float32)[:, None] * frequency
    columns = torch.arange(grid_size[1], device=like.device, dtype=torch.float32)[:, None] * frequency
    rows = torch.cat([rows.sin(), rows.cos()], dim=1)[:, None, :].expand(-1, grid_size[1], -1)
    columns = torch.cat([columns.sin(), columns.cos()], dim=1)[None, :, :].expand(grid_size[0], -1, -1)
    embedding = torch.cat([rows, columns], dim=2)  # [gh, gw, dim]
    return embedding.permute(2, 0, 1).unsqueeze(0).to(like.dtype)
