"""PLSTM2D: the pLSTM layer of images, four corner-to-corner sweeps of a patch grid with gates from one linear
map of the input (P-mode: stable propagation; D-mode: diffusive multitree)."""

import torch
from torch import Tensor

from ..checks import check_bool
from ..functional.grid import BACKENDS as GRID_BACKENDS
from ..functional.grid import GRID_ORIENTATIONS, GridGates, plstm_grid_orientations
from .norm import MultiHeadRMSNorm

ORIENTATION_SETS = {1: GRID_ORIENTATIONS[:1], 2: (GRID_ORIENTATIONS[0], GRID_ORIENTATIONS[3]), 4: GRID_ORIENTATIONS}
GATES = {
    "P": ("source", "angle", "decay", "mark"),
    "D": ("source_r", "source_d", "transition_rr", "transition_dd", "transition_rd", "mark_r", "mark_d"),
}


class PLSTM2D(torch.nn.Module):
    r"""The 2D pLSTM layer of Pöppel et al. (2025) on a grid of features, swept from several corners.

    Per pixel and head, shared by all orientations:
    :math:`q = K^{-1/2} W_q x`, :math:`k = W_k x`, :math:`v = W_v x`, :math:`D = \sigma(w_D^\top x)`.
    Per orientation :math:`o` (one corner-to-corner sweep of
    :func:`~plstm_geometric.functional.plstm_grid`) the gates come from one linear map of :math:`x`.

    **P-mode** (propagation) with angle :math:`\alpha = \sigma(a)`, decay :math:`\gamma = \sigma(g)`,
    source :math:`s = \sigma(\cdot)`, mark :math:`m = \sigma(\cdot)`:

    .. math::
        \begin{pmatrix} T^{rr} & T^{dr} \\ T^{rd} & T^{dd} \end{pmatrix}
        = \gamma \begin{pmatrix} \alpha & \alpha \\ 1 - \alpha & 1 - \alpha \end{pmatrix}, \qquad
        S^r = s\,\alpha, \quad S^d = s\,(1 - \alpha), \quad M^r = M^d = m.

    Columns are incoming edges: the state arriving along either edge is split between the two outgoing
    edges in the ratio :math:`\alpha : 1 - \alpha` and shrunk by :math:`\gamma`. All entries are
    non-negative and every column sums to :math:`\gamma < 1` for any pre-activation, so the total
    state mass on an anti-diagonal can only decay although the number of paths grows exponentially.

    **D-mode** (diffusion): :math:`T^{dr} = 0` makes the line graph a multitree (an incoming d-edge only
    continues downwards), so each source reaches each node along exactly one path and
    :math:`|T| < 1` per entry suffices: :math:`T^{rr}, T^{dd}, T^{rd} = \tanh(\cdot)` (signed),
    :math:`S^r, S^d, M^r, M^d = \sigma(\cdot)` separately.

    The orientations are averaged, then a multi-head RMS norm and the output projection follow:
    :math:`y = W_o\, \mathrm{RMSNorm}_h\big(\tfrac{1}{O} \sum_o \mathrm{pLSTM}_o(x)\big)`.

    Initialisation follows the paper's vision configuration (ml-jku/plstm_experiments): gate weights
    zero, so the gates start input-independent; biases source :math:`-4`, mark :math:`-4`, direct
    :math:`-6` (all through a sigmoid), the angle bias spread linearly over the heads from
    :math:`-2` to :math:`2` (heads start with different preferred directions). The paper initialises its
    transitions at :math:`\tanh(5) \approx 1`; we start the P-mode decay at :math:`\sigma(6) \approx
    0.9975` and the D-mode transitions at :math:`\tanh(3) \approx 0.995`, close to 1 (long range) but
    off the flat end of the activation so they still get gradients. q, k, v and the output projection
    use truncated normal (std 0.02) weights and zero biases.

    Args:
        dim (int): input and output channels.
        heads (int): heads :math:`H`; ``dim`` must be divisible by it (value channels ``dim // heads``).
        mode (str): ``"P"`` or ``"D"``.
        orientations (int): 1 (from the corner ``(0, 0)``), 2 (from ``(0, 0)`` and the opposite corner)
            or 4 (all corners).
        qk_channels (int, optional): query/key channels per head :math:`K`; default ``dim // heads``.
        backend (str): passed to :func:`~plstm_geometric.functional.plstm_grid`.
        recompute_states (bool): recompute the cell states in the backward pass (less memory).

    Shapes:
        input ``[B, X, Y, dim]``, output ``[B, X, Y, dim]``.
    """

    SOURCE_BIAS = -4.0
    MARK_BIAS = -4.0
    DIRECT_BIAS = -6.0
    DECAY_BIAS = 6.0
    TRANSITION_BIAS = 3.0
    ANGLE_BIAS_RANGE = (-2.0, 2.0)

    def __init__(
        self,
        dim: int,
        heads: int,
        mode: str = "P",
        orientations: int = 4,
        qk_channels: int | None = None,
        backend: str = "auto",
        recompute_states: bool = False,
    ):
        super().__init__()
        for name, value in (("dim", dim), ("heads", heads)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name}: expected a positive int, got {value!r}")
        if dim % heads:
            raise ValueError(f"dim: expected a multiple of heads={heads}, got {dim}")
        if mode not in GATES:
            raise ValueError(f"mode: expected 'P' or 'D', got {mode!r}")
        if orientations not in ORIENTATION_SETS:
            raise ValueError(f"orientations: expected 1, 2 or 4, got {orientations!r}")
        qk_channels = dim // heads if qk_channels is None else qk_channels
        if not isinstance(qk_channels, int) or isinstance(qk_channels, bool) or qk_channels < 1:
            raise ValueError(f"qk_channels: expected a positive int, got {qk_channels!r}")
        if backend not in GRID_BACKENDS:
            raise ValueError(f"backend: expected one of {GRID_BACKENDS}, got {backend!r}")
        check_bool("recompute_states", recompute_states)
        self.dim = dim
        self.heads = heads
        self.mode = mode
        self.orientations = orientations
        self.qk_channels = qk_channels
        self.head_channels = dim // heads
        self.backend = backend
        self.recompute_states = recompute_states

        self.query = torch.nn.Linear(dim, heads * qk_channels)
        self.key = torch.nn.Linear(dim, heads * qk_channels)
        self.value = torch.nn.Linear(dim, dim)
        self.direct = torch.nn.Linear(dim, heads)
        # One map for the gates of all orientations, heads and gate kinds: output [O, H, gates].
        self.gates_projection = torch.nn.Linear(dim, orientations * heads * len(GATES[mode]))
        self.norm = MultiHeadRMSNorm(heads, self.head_channels)
        self.out_projection = torch.nn.Linear(dim, dim)
        self.reset_parameters()

    def reset_parameters(self):
        for linear in (self.query, self.key, self.value, self.out_projection):
            torch.nn.init.trunc_normal_(linear.weight, std=0.02)
            torch.nn.init.zeros_(linear.bias)
        torch.nn.init.zeros_(self.direct.weight)
        torch.nn.init.constant_(self.direct.bias, self.DIRECT_BIAS)
        torch.nn.init.zeros_(self.gates_projection.weight)
        with torch.no_grad():
            bias = self.gates_projection.bias.view(self.orientations, self.heads, len(GATES[self.mode]))
            for index, name in enumerate(GATES[self.mode]):
                if name.startswith("source"):
                    bias[..., index] = self.SOURCE_BIAS
                elif name.startswith("mark"):
                    bias[..., index] = self.MARK_BIAS
                elif name == "decay":
                    bias[..., index] = self.DECAY_BIAS
                elif name == "angle":
                    bias[..., index] = torch.linspace(*self.ANGLE_BIAS_RANGE, self.heads)
                else:
                    bias[..., index] = self.TRANSITION_BIAS
        self.norm.reset_parameters()

    def gates(self, x: Tensor) -> GridGates:
        """The constrained per-orientation gates of :func:`plstm_grid_orientations`, each
        ``[O, B, X, Y, H]``. The direct gate does not depend on the sweep direction: one gate, shared by
        all orientations (the mean over orientations keeps it counted once)."""
        direct = torch.sigmoid(self.direct(x)).expand(self.orientations, *x.shape[:3], self.heads)
        pre = self.gates_projection(x).unflatten(-1, (self.orientations, self.heads, -1))
        pre = pre.movedim(-3, 0).unbind(-1)  # per gate kind [O, B, X, Y, H]
        if self.mode == "P":
            source, angle, decay, mark = pre
            source, decay, mark = torch.sigmoid(source), torch.sigmoid(decay), torch.sigmoid(mark)
            # sigmoid(-a) = 1 - sigmoid(a), without the cancellation of 1 - alpha for alpha near 1.
            alpha, alpha_complement = torch.sigmoid(angle), torch.sigmoid(-angle)
            into_r, into_d = decay * alpha, decay * alpha_complement
            return GridGates(
                source_r=source * alpha,
                source_d=source * alpha_complement,
                transition_rr=into_r,
                transition_dd=into_d,
                transition_rd=into_d,
                transition_dr=into_r,
                mark_r=mark,
                mark_d=mark,
                direct=direct,
            )
        source_r, source_d, transition_rr, transition_dd, transition_rd, mark_r, mark_d = pre
        return GridGates(
            source_r=torch.sigmoid(source_r),
            source_d=torch.sigmoid(source_d),
            transition_rr=torch.tanh(transition_rr),
            transition_dd=torch.tanh(transition_dd),
            transition_rd=torch.tanh(transition_rd),
            transition_dr=torch.zeros_like(transition_rd),
            mark_r=torch.sigmoid(mark_r),
            mark_d=torch.sigmoid(mark_d),
            direct=direct,
        )

    def forward(self, x: Tensor) -> Tensor:
        if not isinstance(x, Tensor):
            raise TypeError(f"x: expected a torch.Tensor, got {type(x).__name__}")
        if x.dim() != 4 or x.size(-1) != self.dim:
            raise ValueError(f"x: expected shape [B, X, Y, {self.dim}], got {tuple(x.shape)}")
        dtype = self.query.weight.dtype
        if x.dtype != dtype and not torch.is_autocast_enabled(x.device.type):
            raise TypeError(f"x: expected dtype {dtype} (the dtype of the layer), got {x.dtype}")
        grid = x.shape[:3]
        query = self.query(x).view(*grid, self.heads, self.qk_channels) * self.qk_channels**-0.5
        key = self.key(x).view(*grid, self.heads, self.qk_channels)
        value = self.value(x).view(*grid, self.heads, self.head_channels)
        out = plstm_grid_orientations(
            query,
            key,
            value,
            self.gates(x),
            orientations=ORIENTATION_SETS[self.orientations],
            reduce="mean",
            backend=self.backend,
            recompute_states=self.recompute_states,
        )
        return self.out_projection(self.norm(out).flatten(-2))

    def __repr__(self) -> str:
        return (
            f"{self.__class__.__name__}({self.dim}, heads={self.heads}, mode={self.mode!r}, "
            f"orientations={self.orientations})"
        )
