"""Randomised bad inputs to the public functions: only a clear error naming an argument, or a correct result."""

import random
import re

import pytest
import torch

from plstm_geometric.functional import linear_recurrence, plstm_dag, plstm_dag_naive
from plstm_geometric.functional.dag import TORCH_BACKENDS
from plstm_geometric.graph import build_plan, dagify, line_graph, node_levels
from plstm_geometric.nn import GILR, GILRLSTM, PLSTMConv

ARGUMENT = re.compile(r"^[A-Za-z_][\w\[\]\. ()]*: ")


def corrupt(value, rng):
    """A random bad version of a tensor argument (or of any argument)."""
    choice = rng.randrange(10)
    if not isinstance(value, torch.Tensor) or choice == 0:
        return rng.choice([None, 3, "edges", [0, 1], 1.5, object()])
    if choice == 1:
        return value.to(rng.choice([torch.int32, torch.float16, torch.bool, torch.float64]))
    if choice == 2:
        return value.reshape(-1) if value.dim() > 1 else value[None]
    if choice == 3:
        return value[..., :0] if value.dim() else value
    if choice == 4 and value.numel():
        bad = value.clone()
        flat = bad.view(-1)
        if bad.is_floating_point():
            flat[rng.randrange(flat.numel())] = rng.choice([float("nan"), float("inf"), -float("inf")])
        else:
            flat[rng.randrange(flat.numel())] = rng.choice([-1, 10**6])
        return bad
    if choice == 5:
        return value.transpose(0, -1) if value.dim() > 1 else value
    if choice == 6:
        return value.unsqueeze(0)
    if choice == 7:
        return value.new_empty((0,) + tuple(value.shape[1:]))
    return value  # unchanged: the call must then succeed


def call(function, kwargs):
    try:
        return function(**kwargs), None
    except (TypeError, ValueError) as error:
        assert ARGUMENT.match(str(error)), f"{function.__name__}: unclear error {type(error).__name__}: {error}"
        return None, error


def dag_case(rng):
    generator = torch.Generator().manual_seed(rng.randrange(10**6))
    num_nodes = rng.randrange(1, 7)
    a, b = torch.randint(0, num_nodes, (2, 2 * num_nodes), generator=generator)
    keep = a != b
    edge_index = torch.stack([torch.minimum(a, b)[keep], torch.maximum(a, b)[keep]])
    line_edge_index = line_graph(edge_index, num_nodes)
    E, L = edge_index.size(1), line_edge_index.size(1)
    rand = lambda *s: torch.randn(*s, generator=generator, dtype=torch.float64)  # noqa: E731
    inputs = dict(
        query=rand(num_nodes, 1, 2),
        key=rand(num_nodes, 1, 2),
        value=rand(num_nodes, 1, 2),
        source=rand(E, 1).sigmoid(),
        transition=rand(L, 1).sigmoid(),
        mark=rand(E, 1).sigmoid(),
        direct=rand(num_nodes, 1).sigmoid(),
    )
    return num_nodes, edge_index, line_edge_index, inputs


def test_fuzz_plstm_dag():
    rng = random.Random(0)
    for _ in range(120):
        num_nodes, edge_index, line_edge_index, inputs = dag_case(rng)
        kwargs = dict(
            inputs,
            edge_index=edge_index,
            line_edge_index=line_edge_index,
            backend=rng.choice(("auto",) + TORCH_BACKENDS),
        )
        name = rng.choice(list(kwargs))
        if name == "backend":
            kwargs[name] = rng.choice(["LEVELS", "", None, 1])
        else:
            kwargs[name] = corrupt(kwargs[name], rng)
        out, error = call(plstm_dag, kwargs)
        if out is not None:
            names = ("query", "key", "value", "source", "transition", "mark", "direct")
            expected = plstm_dag_naive(*(kwargs[n] for n in names), kwargs["edge_index"], kwargs["line_edge_index"])
            assert torch.equal(torch.isfinite(out), torch.isfinite(expected)), name
            finite = torch.isfinite(expected)
            torch.testing.assert_close(out[finite], expected[finite])


def test_fuzz_structure_functions():
    rng = random.Random(1)
    for _ in range(120):
        num_nodes, edge_index, line_edge_index, _ = dag_case(rng)
        which = rng.randrange(5)
        if which == 0:
            kwargs = dict(edge_index=corrupt(edge_index, rng), num_nodes=rng.choice([num_nodes, -1, 0, 2.0]))
            result, _ = call(node_levels, kwargs)
        elif which == 1:
            undirected = torch.cat([edge_index, edge_index.flip(0)], 1)
            kwargs = dict(edge_index=undirected, num_nodes=num_nodes, order=corrupt(torch.rand(num_nodes), rng))
            result, _ = call(dagify, kwargs)
            if result is not None:
                node_levels(result, num_nodes)  # acyclic
        elif which == 2:
            kwargs = dict(edge_index=corrupt(edge_index, rng), num_nodes=num_nodes, mode=rng.choice(["P", "D", "x"]))
            call(line_graph, kwargs)
        else:
            kwargs = dict(
                edge_index=edge_index,
                line_edge_index=line_edge_index,
                num_nodes=num_nodes,
                node_level=node_levels(edge_index, num_nodes),
            )
            name = rng.choice(list(kwargs))
            kwargs[name] = corrupt(kwargs[name], rng)
            call(build_plan, kwargs)


def test_fuzz_linear_recurrence():
    rng = random.Random(2)
    for _ in range(80):
        kwargs = dict(
            decay=torch.rand(2, rng.randrange(0, 12), 3),
            impulse=None,
            initial_state=torch.rand(2, 3),
            reverse=rng.choice([False, True]),
        )
        kwargs["impulse"] = torch.randn_like(kwargs["decay"])
        name = rng.choice(list(kwargs))
        kwargs[name] = corrupt(kwargs[name], rng) if name != "reverse" else rng.choice([0, "yes", None])
        out, _ = call(linear_recurrence, kwargs)
        if out is not None:
            h, rows = kwargs["initial_state"], []
            steps = range(out.size(1) - 1, -1, -1) if kwargs["reverse"] else range(out.size(1))
            for t in steps:
                h = kwargs["decay"][:, t] * h + kwargs["impulse"][:, t]
                rows.append(h)
            if rows:
                expected = torch.stack(rows[::-1] if kwargs["reverse"] else rows, 1)
                torch.testing.assert_close(out, expected, equal_nan=True)


@pytest.mark.parametrize("seed", range(3))
def test_fuzz_modules(seed):
    rng = random.Random(10 + seed)
    conv = PLSTMConv(3, 4, heads=2)
    gilr, lstm = GILR(3, 4), GILRLSTM(3, 4)
    for _ in range(25):
        num_nodes, edge_index, _, _ = dag_case(rng)
        x = torch.randn(num_nodes, 3)
        if rng.random() < 0.5:
            call(lambda x, edge_index: conv(x, edge_index), dict(x=corrupt(x, rng), edge_index=edge_index))
        else:
            call(lambda x, edge_index: conv(x, edge_index), dict(x=x, edge_index=corrupt(edge_index, rng)))
        sequence = torch.randn(2, rng.randrange(0, 5), 3)
        call(lambda x: gilr(x), dict(x=corrupt(sequence, rng)))
        call(lambda x: lstm(x, return_state=True), dict(x=corrupt(sequence, rng)))
