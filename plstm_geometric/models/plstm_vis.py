import torch
import torch.nn.functional as F
from torch import Tensor

from ..nn.plstm2d import PLSTM2D
from .common import check_vision_model_args


class PLSTMVisBlock(torch.nn.Module):
    r"""Pre-norm residual block: :math:`z \leftarrow z + \mathrm{PLSTM2D}(\mathrm{LN}(z))`, then
    :math:`z \leftarrow z + W_2\, \mathrm{GELU}(W_1\, \mathrm{LN}(z))`.

    Shapes:
        input ``[B, X, Y, dim]``, output the same.
    """

    def __init__(
        self,
        dim: int,
        heads: int,
        mode: str,
        mlp_ratio: float = 4.0,
        orientations: int = 4,
        backend: str = "auto",
        recompute_states: bool = False,
    ):
        super().__init__()
        self.norm1 = torch.nn.LayerNorm(dim)
        self.plstm = PLSTM2D(
            dim, heads, mode=mode, orientations=orientations, backend=backend, recompute_states=recompute_states
        )
        self.norm2 = torch.nn.LayerNorm(dim)
        hidden = int(dim * mlp_ratio)
        self.mlp = torch.nn.Sequential(torch.nn.Linear(dim, hidden), torch.nn.GELU(), torch.nn.Linear(hidden, dim))
        self.reset_parameters()

    def reset_parameters(self):
        self.norm1.reset_parameters()
        self.plstm.reset_parameters()
        self.norm2.reset_parameters()
        for linear in (self.mlp[0], self.mlp[2]):
            torch.nn.init.trunc_normal_(linear.weight, std=0.02)
            torch.nn.init.zeros_(linear.bias)

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.plstm(self.norm1(x))
        return x + self.mlp(self.norm2(x))

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.plstm!r}, mlp={self.mlp[0].out_features})"


class PLSTMVis(torch.nn.Module):
    r"""pLSTM vision model (pLSTM-Vis, Pöppel et al., 2025): a ViT whose attention is replaced by
    :class:`~plstm_geometric.nn.PLSTM2D` on the patch grid.

    .. math::
        z_0 = \mathrm{PatchEmbed}(X) + P, \qquad z_\ell = \mathrm{Block}_\ell(z_{\ell-1}), \qquad
        \hat{y} = W\, [\,\bar{z}_{0,0};\ \bar{z}_{X-1,0};\ \bar{z}_{0,Y-1};\ \bar{z}_{X-1,Y-1}\,] + b,
        \quad \bar{z} = \mathrm{LN}(z_L)

    Blocks (:class:`PLSTMVisBlock`) alternate P-mode (even index) and D-mode (odd index) layers, each with
    four corner sweeps. Pooling is the paper's corner pooling: the features of the four corner patches
    are *concatenated* (``4 * dim`` inputs to the head), since each corner is where one of the four sweeps
    has seen the whole image. The paper's pLSTM-Vis-T stacks 6 blocks of a P-layer and a D-layer each;
    here ``depth`` counts single-layer blocks.

    Position embedding: ``"learned"`` keeps a table for the ``image_size / patch_size`` grid, resized
    bicubically for inputs of another size (so the same weights run at 192 and 384 px); ``None`` uses
    none (the recurrence itself is position-aware through the sweep boundaries).

    Args:
        image_size (int or tuple): training image side (or ``(height, width)``); sets the learned table.
        patch_size (int): patch side; every input side must be a multiple of it.
        in_channels (int): image channels.
        num_classes (int): output logits.
        dim (int): token width.
        heads (int): pLSTM heads (``dim`` must be divisible by it).
        depth (int): blocks.
        mlp_ratio (float): MLP hidden width over ``dim``.
        pos_embedding (str or None): ``"learned"`` or ``None``.
        orientations (int): corner sweeps per layer (1, 2 or 4).
        backend (str): ``plstm_grid`` backend.
        recompute_states (bool): recompute the pLSTM cell states in the backward pass (less memory).

    Shapes:
        input ``[B, in_channels, H, W]`` with ``H, W`` multiples of ``patch_size``; output ``[B, num_classes]``.
    """

    CONFIGS = {"tiny": dict(dim=192, heads=3, depth=6)}

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
        pos_embedding: str | None = "learned",
        orientations: int = 4,
        backend: str = "auto",
        recompute_states: bool = False,
    ):
        super().__init__()
        image_size = check_vision_model_args(image_size, patch_size, in_channels, num_classes, dim, heads, depth)
        if pos_embedding not in ("learned", None):
            raise ValueError(f"pos_embedding: expected 'learned' or None, got {pos_embedding!r}")

        self.image_size = image_size
        self.patch_size = patch_size
        self.in_channels = in_channels
        self.num_classes = num_classes
        self.dim = dim
        self.heads = heads
        self.depth = depth
        self.grid_size = (image_size[0] // patch_size, image_size[1] // patch_size)

        self.patch_embedding = torch.nn.Conv2d(in_channels, dim, kernel_size=patch_size, stride=patch_size)
        if pos_embedding == "learned":
            self.pos_embedding = torch.nn.Parameter(torch.empty(1, dim, *self.grid_size))
        else:
            self.register_parameter("pos_embedding", None)
        self.blocks = torch.nn.ModuleList(
            PLSTMVisBlock(
                dim,
                heads,
                mode="P" if index % 2 == 0 else "D",
                mlp_ratio=mlp_ratio,
                orientations=orientations,
                backend=backend,
                recompute_states=recompute_states,
            )
            for index in range(depth)
        )
        self.norm = torch.nn.LayerNorm(dim)
        self.head = torch.nn.Linear(4 * dim, num_classes)
        self.reset_parameters()

    @classmethod
    def from_config(cls, name: str, image_size, patch_size: int, in_channels: int, num_classes: int, **kwargs):
        """A named configuration of :attr:`CONFIGS` (``"tiny"``: dim 192, 3 heads, 6 blocks); ``kwargs``
        override its entries."""
        if name not in cls.CONFIGS:
            raise ValueError(f"name: expected one of {sorted(cls.CONFIGS)}, got {name!r}")
        return cls(image_size, patch_size, in_channels, num_classes, **{**cls.CONFIGS[name], **kwargs})

    @classmethod
    def tiny(cls, image_size, patch_size: int, in_channels: int, num_classes: int, **kwargs):
        """pLSTM-Vis tiny: dim 192, 3 heads, 6 blocks."""
        return cls.from_config("tiny", image_size, patch_size, in_channels, num_classes, **kwargs)

    def reset_parameters(self):
        self.patch_embedding.reset_parameters()
        if self.pos_embedding is not None:
            torch.nn.init.trunc_normal_(self.pos_embedding, std=0.02)
        for block in self.blocks:
            block.reset_parameters()
        self.norm.reset_parameters()
        torch.nn.init.trunc_normal_(self.head.weight, std=0.02)
        torch.nn.init.zeros_(self.head.bias)

    def patch_position_embedding(self, grid_size) -> Tensor:
        """The learned table ``[1, dim, gh, gw]``, resized bicubically to ``grid_size`` when needed."""
        if tuple(grid_size) == self.grid_size:
            return self.pos_embedding
        return F.interpolate(self.pos_embedding, size=tuple(grid_size), mode="bicubic", align_corners=False)

    def forward(self, images: Tensor) -> Tensor:
        if not isinstance(images, Tensor):
            raise TypeError(f"images: expected a torch.Tensor, got {type(images).__name__}")
        if images.dim() != 4 or images.size(1) != self.in_channels:
            raise ValueError(f"images: expected [B, {self.in_channels}, H, W], got {tuple(images.shape)}")
        if images.size(2) % self.patch_size or images.size(3) % self.patch_size:
            raise ValueError(
                f"images: expected height and width multiples of patch_size={self.patch_size}, "
                f"got {tuple(images.shape[2:])}"
            )
        patches = self.patch_embedding(images)  # [B, dim, gh, gw]
        if self.pos_embedding is not None:
            patches = patches + self.patch_position_embedding(patches.shape[2:])
        tokens = patches.permute(0, 2, 3, 1)  # [B, X, Y, dim]: X along the image height
        for block in self.blocks:
            tokens = block(tokens)
        tokens = self.norm(tokens)
        corners = torch.cat([tokens[:, 0, 0], tokens[:, -1, 0], tokens[:, 0, -1], tokens[:, -1, -1]], dim=-1)
        return self.head(corners)

    def __repr__(self) -> str:
        return (
            f"{self.__class__.__name__}(image_size={self.image_size}, patch_size={self.patch_size}, "
            f"in_channels={self.in_channels}, num_classes={self.num_classes}, dim={self.dim}, "
            f"heads={self.heads}, depth={self.depth})"
        )
