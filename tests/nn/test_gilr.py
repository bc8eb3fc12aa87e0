import pytest
import torch

from plstm_geometric.nn import GILR, GILRLSTM


def naive_gilr(module, x, initial_state=None):
    """The GILR equations step by step, from the module's own weights."""
    hidden = module.hidden_channels
    weight, bias = module.lin.weight, module.lin.bias
    state = x.new_zeros(x.shape[0], hidden) if initial_state is None else initial_state
    out = []
    for t in range(x.shape[1]):
        gate = torch.sigmoid(x[:, t] @ weight[:hidden].t() + bias[:hidden])
        candidate = torch.tanh(x[:, t] @ weight[hidden : 2 * hidden].t() + bias[hidden : 2 * hidden])
        state = gate * state + (1 - gate) * candidate
        out.append(state)
    return torch.stack(out, dim=1)


def naive_gilr_lstm(module, x, gilr_state=None, cell_state=None):
    """The GILR-LSTM equations step by step; the gates read the current summary h~_t."""
    hidden = module.hidden_channels
    weight, bias = module.lin.weight, module.lin.bias
    summary_weight = module.lin_summary.weight  # [U_f; U_i; U_o; U_z]

    def block(k):  # rows of V / b for block k of [g, j, f, i, o, z]
        return weight[k * hidden : (k + 1) * hidden], bias[k * hidden : (k + 1) * hidden]

    def summary_block(k):  # rows of U for block k of [f, i, o, z]
        return summary_weight[k * hidden : (k + 1) * hidden]

    summary = x.new_zeros(x.shape[0], hidden) if gilr_state is None else gilr_state
    cell = x.new_zeros(x.shape[0], hidden) if cell_state is None else cell_state
    out = []
    for t in range(x.shape[1]):
        x_t = x[:, t]
        (v_g, b_g), (v_j, b_j) = block(0), block(1)
        g = torch.sigmoid(x_t @ v_g.t() + b_g)
        summary = g * summary + (1 - g) * torch.tanh(x_t @ v_j.t() + b_j)
        pre = [summary @ summary_block(k).t() + x_t @ block(k + 2)[0].t() + block(k + 2)[1] for k in range(4)]
        f, i, o = torch.sigmoid(pre[0]), torch.sigmoid(pre[1]), torch.sigmoid(pre[2])
        z = torch.tanh(pre[3])
        cell = f * cell + i * z
        out.append(o * cell)
    return torch.stack(out, dim=1), summary, cell


@pytest.mark.parametrize("length", [1, 5, 37])
def test_gilr_matches_naive(length):
    module = GILR(4, 6).double()
    x = torch.randn(3, length, 4, dtype=torch.float64)
    initial_state = torch.randn(3, 6, dtype=torch.float64)
    out = module(x)
    assert out.shape == (3, length, 6)
    torch.testing.assert_close(out, naive_gilr(module, x), rtol=0, atol=1e-10)
    torch.testing.assert_close(module(x, initial_state), naive_gilr(module, x, initial_state), rtol=0, atol=1e-10)


@pytest.mark.parametrize("length", [1, 5, 37])
def test_gilr_lstm_matches_naive(length):
    module = GILRLSTM(4, 6).double()
    x = torch.randn(3, length, 4, dtype=torch.float64)
    gilr_state, cell_state = torch.randn(2, 3, 6, dtype=torch.float64)
    out = module(x)
    assert out.shape == (3, length, 6)
    torch.testing.assert_close(out, naive_gilr_lstm(module, x)[0], rtol=0, atol=1e-10)

    out, (last_summary, last_cell) = module(x, (gilr_state, cell_state), return_state=True)
    expected, expected_summary, expected_cell = naive_gilr_lstm(module, x, gilr_state, cell_state)
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-10)
    torch.testing.assert_close(last_summary, expected_summary, rtol=0, atol=1e-10)
    torch.testing.assert_close(last_cell, expected_cell, rtol=0, atol=1e-10)
    # Only one of the two states given.
    torch.testing.assert_close(
        module(x, (None, cell_state)), naive_gilr_lstm(module, x, None, cell_state)[0], rtol=0, atol=1e-10
    )


def test_gilr_lstm_state_continues_a_split_sequence():
    module = GILRLSTM(3, 5).double()
    x = torch.randn(2, 40, 3, dtype=torch.float64)
    first, state = module(x[:, :17], return_state=True)
    second = module(x[:, 17:], state)
    torch.testing.assert_close(torch.cat([first, second], dim=1), module(x), rtol=0, atol=1e-12)


@pytest.mark.parametrize("cls", [GILR, GILRLSTM])
def test_gradients_reach_all_parameters(cls):
    module = cls(4, 6)
    x = torch.randn(2, 23, 4, requires_grad=True)
    module(x).pow(2).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    for name, parameter in module.named_parameters():
        assert parameter.grad is not None, name
        assert parameter.grad.abs().sum() > 0, name


def test_gilr_lstm_gradcheck():
    module = GILRLSTM(2, 3).double()
    x = torch.randn(2, 9, 2, dtype=torch.float64, requires_grad=True)
    states = tuple(torch.randn(2, 3, dtype=torch.float64, requires_grad=True) for _ in range(2))
    assert torch.autograd.gradcheck(lambda x, s, c: module(x, (s, c)), (x, *states))


def test_forward_projected_equals_forward():
    module = GILRLSTM(5, 4)
    symbols = torch.randint(0, 5, (2, 11))
    one_hot = torch.nn.functional.one_hot(symbols, 5).float()
    projected = torch.nn.functional.embedding(symbols, module.lin.weight.t()) + module.lin.bias
    torch.testing.assert_close(module.forward_projected(projected), module(one_hot))


def test_reset_parameters_and_chrono_initialisation():
    module = GILRLSTM(3, 8, max_timescale=100)
    hidden = 8
    bias = module.lin.bias.detach()
    gilr_bias, forget_bias, input_bias = bias[:hidden], bias[2 * hidden : 3 * hidden], bias[3 * hidden : 4 * hidden]
    for b in (gilr_bias, forget_bias):
        assert (b >= 0).all() and (b <= torch.log(torch.tensor(99.0))).all()
    torch.testing.assert_close(input_bias, -forget_bias)
    before = module.lin.weight.detach().clone()
    module.reset_parameters()
    assert not torch.equal(before, module.lin.weight)
    assert (module.lin.bias[:hidden] >= 0).all()
    assert (GILR(3, 8, max_timescale=50).lin.bias[:8] >= 0).all()
    assert repr(module) == "GILRLSTM(3, 8, max_timescale=100)"
    assert repr(GILR(3, 8)) == "GILR(3, 8)"


def test_bfloat16():
    module = GILRLSTM(4, 6)
    x = torch.randn(2, 50, 4)
    out = module.to(torch.bfloat16)(x.bfloat16())
    assert out.dtype == torch.bfloat16
    reference = module.float()(x)
    assert (out.float() - reference).abs().max() < 0.05


def test_bad_inputs():
    module = GILRLSTM(4, 6)
    x = torch.randn(2, 5, 4)
    with pytest.raises(ValueError, match="x"):
        module(torch.randn(2, 5, 3))
    with pytest.raises(ValueError, match="x"):
        module(torch.randn(5, 4))
    with pytest.raises(TypeError, match="x"):
        module(torch.zeros(2, 5, 4, dtype=torch.long))
    with pytest.raises(TypeError, match="initial_state"):
        module(x, torch.zeros(2, 6))
    with pytest.raises(ValueError, match="cell_state"):
        module(x, (None, torch.zeros(3, 6)))
    with pytest.raises(ValueError, match="projected"):
        module.forward_projected(torch.randn(2, 5, 4))
    with pytest.raises(ValueError, match="initial_state"):
        GILR(4, 6)(x, torch.zeros(2, 5))
    with pytest.raises(ValueError, match="max_timescale"):
        GILR(4, 6, max_timescale=1)


@pytest.mark.gpu
def test_cuda_matches_cpu():
    module = GILRLSTM(4, 6).double()
    x = torch.randn(2, 300, 4, dtype=torch.float64)
    expected = module(x)
    torch.testing.assert_close(module.cuda()(x.cuda()).cpu(), expected, rtol=0, atol=1e-10)
