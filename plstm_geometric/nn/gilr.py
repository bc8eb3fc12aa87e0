"""GILR and GILR-LSTM (Martin & Cundy, ICLR 2018): sequence layers whose recurrence is linear in the state,
evaluated in logarithmic depth by :func:`~plstm_geometric.functional.linear_recurrence`."""

import torch
from torch import Tensor

from ..checks import check_positive_int
from ..functional.scan import linear_recurrence


def _gilr(projected: Tensor, initial_state: Tensor | None) -> Tensor:
    """GILR recurrence from the pre-activations ``[B, T, 2 H]`` (gate first, candidate second)."""
    gate_pre, candidate_pre = projected.chunk(2, dim=-1)
    gate = torch.sigmoid(gate_pre)
    return linear_recurrence(gate, (1 - gate) * torch.tanh(candidate_pre), initial_state)


def _chrono_bias_(bias: Tensor, max_timescale: float) -> None:
    r"""Chrono initialisation (Tallec & Ollivier, ICLR 2018) of a decay gate's bias, in place:
    :math:`b = \log u`, :math:`u \sim U(1, T_{max} - 1)`, so unit :math:`k` starts with decay
    :math:`\sigma(b_k) = u_k / (1 + u_k)`, i.e. a memory of about :math:`u_k` steps."""
    with torch.no_grad():
        bias.uniform_(1, max_timescale - 1).log_()


def _check_max_timescale(max_timescale) -> None:
    if max_timescale is not None and not max_timescale > 2:
        raise ValueError(f"max_timescale: expected None or a number > 2, got {max_timescale}")


def _check_input(x, in_channels: int, weight: Tensor) -> None:
    if not isinstance(x, Tensor):
        raise TypeError(f"x: expected a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"x: expected a floating-point tensor, got {x.dtype}")
    if x.dtype != weight.dtype and not torch.is_autocast_enabled(x.device.type):
        raise TypeError(f"x: expected dtype {weight.dtype} (the dtype of the layer), got {x.dtype}")
    if x.dim() != 3 or x.shape[-1] != in_channels:
        raise ValueError(f"x: expected shape [B, T, {in_channels}], got {tuple(x.shape)}")


def _check_projected(projected, channels: int) -> None:
    if not isinstance(projected, Tensor):
        raise TypeError(f"projected: expected a torch.Tensor, got {type(projected).__name__}")
    if projected.dim() != 3 or projected.shape[-1] != channels:
        raise ValueError(f"projected: expected shape [B, T, {channels}], got {tuple(projected.shape)}")


def _check_state(name: str, state, like: Tensor, hidden_channels: int) -> None:
    if state is None:
        return
    if not isinstance(state, Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor or None, got {type(state).__name__}")
    if tuple(state.shape) != (like.shape[0], hidden_channels):
        raise ValueError(
            f"{name}: expected shape ({like.shape[0]}, {hidden_channels}) ([B, hidden_channels]), "
            f"got {tuple(state.shape)}"
        )
    if state.dtype != like.dtype or state.device != like.device:
        raise TypeError(f"{name}: expected dtype {like.dtype} on {like.device}, got {state.dtype} on {state.device}")


class GILR(torch.nn.Module):
    r"""Gated impulse linear recurrent layer (Martin & Cundy, "Parallelizing Linear Recurrent Neural Nets
    Over Sequence Length", ICLR 2018).

    .. math::
        g_t &= \sigma(V_g x_t + b_g), \qquad j_t = \tanh(V_j x_t + b_j), \\
        \tilde h_t &= g_t \odot \tilde h_{t-1} + (1 - g_t) \odot j_t .

    The gates depend on the input only, so the recurrence is linear in :math:`\tilde h` and is evaluated
    for all :math:`t` at once by :func:`~plstm_geometric.functional.linear_recurrence`
    (depth :math:`O(\log T)` instead of :math:`T`).

    Args:
        in_channels (int): input features :math:`C`.
        hidden_channels (int): state size :math:`H`.
        max_timescale (float, optional): if given, :math:`b_g` gets the chrono initialisation
            :math:`\log U(1, T_{max} - 1)` (Tallec & Ollivier, 2018) instead of the default: memories of
            up to :math:`T_{max}` steps from the start, which long-range tasks need (with the default
            :math:`g \approx 1/2` the signal of step 0 is gone after a few dozen steps). (default: ``None``)

    Shapes:
        - input ``x`` :math:`[B, T, C]`, optional ``initial_state`` :math:`\tilde h_{-1}` :math:`[B, H]`
          (zero when ``None``);
        - output :math:`[B, T, H]`, all states :math:`\tilde h_t` (the last step is the final state).
    """

    def __init__(self, in_channels: int, hidden_channels: int, max_timescale: float | None = None):
        super().__init__()
        check_positive_int("in_channels", in_channels)
        check_positive_int("hidden_channels", hidden_channels)
        _check_max_timescale(max_timescale)
        self.in_channels = in_channels
        self.hidden_channels = hidden_channels
        self.max_timescale = max_timescale
        # One projection for [V_g; V_j]: the gate and the candidate read the same input.
        self.lin = torch.nn.Linear(in_channels, 2 * hidden_channels)
        self.reset_parameters()

    def reset_parameters(self):
        self.lin.reset_parameters()
        if self.max_timescale is not None:
            _chrono_bias_(self.lin.bias[: self.hidden_channels], self.max_timescale)

    def forward(self, x: Tensor, initial_state: Tensor | None = None) -> Tensor:
        _check_input(x, self.in_channels, self.lin.weight)
        return self.forward_projected(self.lin(x), initial_state)

    def forward_projected(self, projected: Tensor, initial_state: Tensor | None = None) -> Tensor:
        r"""The layer from its input projection ``projected = self.lin(x)`` (:math:`[B, T, 2H]`).

        Lets a caller compute :math:`V x + b` another way, e.g. as a row lookup of ``self.lin.weight.t()``
        when :math:`x` is one-hot, without materialising the one-hot input.
        """
        _check_projected(projected, 2 * self.hidden_channels)
        _check_state("initial_state", initial_state, projected, self.hidden_channels)
        return _gilr(projected, initial_state)

    def __repr__(self) -> str:
        timescale = "" if self.max_timescale is None else f", max_timescale={self.max_timescale}"
        return f"{self.__class__.__name__}({self.in_channels}, {self.hidden_channels}{timescale})"


class GILRLSTM(torch.nn.Module):
    r"""GILR-LSTM (Martin & Cundy, ICLR 2018): an LSTM whose gates read a GILR summary
    :math:`\tilde h` instead of the previous output, so both recurrences are linear and parallel over
    time.

    .. math::
        \tilde h_t &= g_t \odot \tilde h_{t-1} + (1 - g_t) \odot j_t
            \qquad \text{(the GILR recurrence on } x\text{)}, \\
        (f_t, i_t, o_t) &= \sigma(U \tilde h_t + V x_t + b), \qquad
        z_t = \tanh(U_z \tilde h_t + V_z x_t + b_z), \\
        c_t &= f_t \odot c_{t-1} + i_t \odot z_t, \qquad h_t = o_t \odot c_t .

    **Which** :math:`\tilde h` **the gates read.** The paper writes :math:`\tilde h_{t-1}` in the gates;
    the authors' reference implementation (``linear_surrogate_lstm`` in ``layers.py`` of
    github.com/eamartin/parallelizing_linear_rnns, which feeds ``concat([h_tilde, X])`` to the gates) uses
    :math:`\tilde h_t`, and so does this layer. The results
    reported in the paper were produced by that code, the current step then enters the gates both
    directly and through the summary (as in a stacked RNN, where layer 2 reads layer 1's *current*
    output), and no extra one-step shift or separate :math:`\tilde h_{-1}` is needed at :math:`t = 0`.

    Args:
        in_channels (int): input features :math:`C`.
        hidden_channels (int): state and output size :math:`H`.
        max_timescale (float, optional): if given, chrono initialisation (Tallec & Ollivier, 2018) of
            both decays: :math:`b_g, b_f \sim \log U(1, T_{max} - 1)` independently and :math:`b_i = -b_f`
            (a unit that remembers :math:`u` steps starts by writing :math:`1/(1+u)` of its input).
            (default: ``None``, the :class:`torch.nn.Linear` initialisation)

    Shapes:
        - input ``x`` :math:`[B, T, C]`; optional ``initial_state = (gilr_state, cell_state)``, each
          :math:`[B, H]` or ``None`` (zero), the :math:`\tilde h_{-1}` and :math:`c_{-1}` of the two
          recurrences;
        - output :math:`h` :math:`[B, T, H]`, or ``(h, (gilr_state, cell_state))`` with the final
          states when ``return_state=True`` (to continue a long sequence chunk by chunk).
    """

    def __init__(self, in_channels: int, hidden_channels: int, max_timescale: float | None = None):
        super().__init__()
        check_positive_int("in_channels", in_channels)
        check_positive_int("hidden_channels", hidden_channels)
        _check_max_timescale(max_timescale)
        self.in_channels = in_channels
        self.hidden_channels = hidden_channels
        self.max_timescale = max_timescale
        # [V_g; V_j; V_f; V_i; V_o; V_z] and all biases: everything that reads x, in one matmul.
        self.lin = torch.nn.Linear(in_channels, 6 * hidden_channels)
        # [U_f; U_i; U_o; U_z]: the gates' view of the GILR summary.
        self.lin_summary = torch.nn.Linear(hidden_channels, 4 * hidden_channels, bias=False)
        self.reset_parameters()

    def reset_parameters(self):
        self.lin.reset_parameters()
        self.lin_summary.reset_parameters()
        if self.max_timescale is not None:
            hidden = self.hidden_channels
            bias = self.lin.bias
            _chrono_bias_(bias[:hidden], self.max_timescale)
            _chrono_bias_(bias[2 * hidden : 3 * hidden], self.max_timescale)
            with torch.no_grad():
                bias[3 * hidden : 4 * hidden] = -bias[2 * hidden : 3 * hidden]

    def forward(
        self, x: Tensor, initial_state: tuple[Tensor | None, Tensor | None] | None = None, return_state: bool = False
    ):
        _check_input(x, self.in_channels, self.lin.weight)
        return self.forward_projected(self.lin(x), initial_state, return_state)

    def forward_projected(
        self,
        projected: Tensor,
        initial_state: tuple[Tensor | None, Tensor | None] | None = None,
        return_state: bool = False,
    ):
        r"""The layer from its input projection ``projected = self.lin(x)`` (:math:`[B, T, 6H]`).

        Lets a caller compute :math:`V x + b` another way, e.g. as a row lookup of ``self.lin.weight.t()``
        when :math:`x` is one-hot, without materialising the one-hot input.
        """
        hidden = self.hidden_channels
        _check_projected(projected, 6 * hidden)
        gilr_state = cell_state = None
        if initial_state is not None:
            if not isinstance(initial_state, (tuple, list)) or len(initial_state) != 2:
                raise TypeError(
                    "initial_state: expected a pair (gilr_state, cell_state) or None, "
                    f"got {type(initial_state).__name__}"
                )
            gilr_state, cell_state = initial_state
            _check_state("initial_state[0] (gilr_state)", gilr_state, projected, hidden)
            _check_state("initial_state[1] (cell_state)", cell_state, projected, hidden)

        summary = _gilr(projected[..., : 2 * hidden], gilr_state)
        gates = projected[..., 2 * hidden :] + self.lin_summary(summary)
        forget, input_gate, output = torch.sigmoid(gates[..., : 3 * hidden]).chunk(3, dim=-1)
        candidate = torch.tanh(gates[..., 3 * hidden :])
        cell = linear_recurrence(forget, input_gate * candidate, cell_state)
        out = output * cell
        if return_state:
            if projected.size(1) == 0:
                # No step taken: the state is the one given (zero when none was).
                zero = projected.new_zeros(projected.size(0), hidden)
                return out, (zero if gilr_state is None else gilr_state, zero if cell_state is None else cell_state)
            return out, (summary[:, -1], cell[:, -1])
        return out

    def __repr__(self) -> str:
        timescale = "" if self.max_timescale is None else f", max_timescale={self.max_timescale}"
        return f"{self.__class__.__name__}({self.in_channels}, {self.hidden_channels}{timescale})"
