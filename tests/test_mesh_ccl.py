"""Collective ops, mesh distribution, memory planning and the link formula, checked against independent numpy."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tilegraph.graph import Graph
from tilegraph.graph.meshes import MESHES, get_mesh
from tilegraph.graph.passes.plan_memory import plan_memory
from tilegraph.graph.passes.shard import Partial, Replicate, Shard
from tilegraph.ops import TensorType, get_op
from tilegraph.runtime.mesh_backend import join_axis, split_axis

from tilegraph.errors import ShapeError
from tilegraph.tiles import padded_numel

# float64 throughout: the adjoint identities hold to rounding of a few hundred products (rtol 1e-12).
TOL = 1e-12


def _arrays(draw, n, shape):
    return [np.asarray(draw(st.lists(st.floats(-2, 2), min_size=int(np.prod(shape)), max_size=int(np.prod(shape)))),
                       dtype=np.float64).reshape(shape) for _ in range(n)]  # fmt: skip


@st.composite
def group(draw):
    n = draw(st.sampled_from([1, 2, 4]))
    rank = draw(st.integers(1, 3))
    shape = [draw(st.integers(1, 3)) for _ in range(rank)]
    dim = draw(st.integers(0, rank - 1))
    shape[dim] *= n
    return n, dim, _arrays(draw, n, tuple(shape)), _arrays(draw, n, tuple(shape))


@settings(deadline=None, max_examples=40, derandomize=True, database=None)
@given(group())
def test_collectives_match_numpy_and_are_adjoint(g):
    n, dim, xs, ys = g
    attrs = {"cluster_axis": 0, "devices": n}
    rs = get_op("reduce_scatter").collective(xs, {**attrs, "dim": dim})
    total = sum(xs)
    for k in range(n):  # device k keeps the k-th piece of the sum
        np.testing.assert_allclose(rs[k], np.split(total, n, axis=dim)[k], rtol=TOL)
    ar = get_op("all_reduce").collective(xs, {**attrs, "reduce": "sum"})
    for a in ar:
        np.testing.assert_allclose(a, total, rtol=TOL)
    pieces = [np.split(y, n, axis=dim)[0] for y in ys]  # any per-device tensors of the scattered size
    ag = get_op("all_gather").collective(pieces, {**attrs, "axis_dim": dim})
    for a in ag:
        np.testing.assert_array_equal(a, np.concatenate(pieces, axis=dim))
    # adjoints (what the backward rules emit): <AG(p), x> = <p, RS(x)>; <AR(x), y> = <x, AR(y)>
    lhs = sum(np.vdot(a, x) for a, x in zip(ag, xs))
    rhs = sum(np.vdot(p, r) for p, r in zip(pieces, rs))
    assert lhs == pytest.approx(rhs, rel=TOL, abs=TOL)
    ary = get_op("all_reduce").collective(ys, {**attrs, "reduce": "sum"})
    assert sum(np.vdot(a, y) for a, y in zip(ar, ys)) == pytest.approx(
        sum(np.vdot(x, a) for x, a in zip(xs, ary)), rel=TOL, abs=TOL
    )
    # shape inference agrees with what the collectives produce
    t = TensorType(xs[0].shape, "float64")
    assert get_op("reduce_scatter").infer([t], {**attrs, "dim": dim})[0].shape == rs[0].shape
    tp = TensorType(pieces[0].shape, "float64")
    assert get_op("all_gather").infer([tp], {**attrs, "axis_dim": dim})[0].shape == ag[0].shape


def test_ccl_backward_rules_pair_up():
    g = Graph("g")
    x = g.input("x", (2, 8))
    y = g.call("all_gather", x, axis_dim=1, cluster_axis=1, devices=4)
    (dx,) = get_op("all_gather").backward(g, y.producer, [y])
    assert (
        dx.producer.op == "reduce_scatter" and dx.shape == x.shape and dx.producer.attrs["cluster_axis"] == 1
    )
    (dy,) = get_op("reduce_scatter").backward(g, dx.producer, [dx])
    assert dy.producer.op == "all_gather" and dy.shape == y.shape
    z = g.call("all_reduce", x, cluster_axis=0, devices=8)
    (dz,) = get_op("all_reduce").backward(g, z.producer, [z])
    assert dz.producer.op == "all_reduce" and dz.producer.attrs["cluster_axis"] == 0


def test_ccl_shape_errors_name_the_op():
    with pytest.raises(ShapeError, match="reduce_scatter.*not divisible by devices=3"):
        get_op("reduce_scatter").infer([TensorType((4, 5))], {"dim": 1, "cluster_axis": 0, "devices": 3})
    with pytest.raises(ShapeError, match="cluster_axis=2"):
        get_op("all_reduce").infer([TensorType((4,))], {"cluster_axis": 2, "devices": 2, "reduce": "sum"})


@st.composite
def placement_case(draw):
    n = draw(st.sampled_from([2, 4]))
    blocks = n * draw(st.integers(1, 2))
    shape = (draw(st.integers(1, 3)), blocks * draw(st.integers(1, 2)))
    kind = draw(st.sampled_from(["R", "S0", "S1", "S1*"]))
    if kind == "R":
        p = Replicate()
    elif kind == "S1*":
        p = Shard(1, tuple(draw(st.permutations(range(blocks)))))
    else:
        p = Shard(int(kind[1]))
        shape = (shape[0] * n, shape[1]) if p.dim == 0 else shape
    return n, p, np.arange(np.prod(shape), dtype=np.float64).reshape(shape)


@settings(deadline=None, max_examples=40, derandomize=True, database=None)
@given(placement_case())
def test_split_then_join_is_the_identity(case):
    n, p, x = case
    pieces = split_axis(x, p, n)
    assert len(pieces) == n
    np.testing.assert_array_equal(join_axis(pieces, p), x)
    if isinstance(p, Shard) and p.order:  # device k holds the blocks order[k*m:(k+1)*m], in that order
        m = len(p.order) // n
        blocks = np.split(x, len(p.order), axis=1)
        np.testing.assert_array_equal(pieces[-1], np.concatenate([blocks[b] for b in p.order[-m:]], axis=1))


def test_partial_join_sums_or_averages():
    parts = [np.full((2,), float(k)) for k in range(4)]
    np.testing.assert_array_equal(join_axis(parts, Partial()), np.full((2,), 6.0))
    np.testing.assert_array_equal(join_axis(parts, Partial("mean")), np.full((2,), 1.5))


def test_tile_padding():
    assert padded_numel(()) == 32 * 32  # a scalar takes one tile
    assert padded_numel((5,)) == 32 * 32
    assert padded_numel((64, 33)) == 64 * 64
    assert padded_numel((2, 40, 70)) == 2 * 64 * 96


def test_liveness_reuses_freed_buffers():
    # a -> b -> c -> d chain of [32,32] float32 activations (bfloat16 on the device: 2 KiB each): at most two are
    # live at once (an op's input and output), so two buffers serve all four.
    g = Graph("chain")
    x = g.input("x", (32, 32))
    w = g.param("w", (32, 32))
    v = x
    for _ in range(4):
        v = g.call("linear", v, w)
    g.output("y", v)
    plan = plan_memory(g, dram_bytes=2**30)
    tile_bf16 = 32 * 32 * 2
    assert plan.persistent["parameters"] == tile_bf16
    assert plan.peak_live == 2 * tile_bf16
    assert plan.allocated == 2 * tile_bf16


@pytest.mark.parametrize("name", list(MESHES))
def test_link_formula(name):
    mesh = get_mesh(name)
    nbytes = 32 * 2**20
    for axis, n in enumerate(mesh.shape):
        t = mesh.ccl_seconds("all_reduce", nbytes, axis)
        if n == 1:
            assert t == 0.0
            continue
        # TT_FACTS.md: 9.07 us + 5.82 us (N-1) + 2(N-1)/N * bytes / 10.9 GB/s, per link, links in parallel
        bw = 10.9e9 * mesh.links[axis]
        assert t == pytest.approx(9.07e-6 + 5.82e-6 * (n - 1) + 2 * (n - 1) / n * nbytes / bw)
        half = mesh.ccl_seconds("all_gather", nbytes, axis)
        assert half == pytest.approx(9.07e-6 + 5.82e-6 * (n - 1) + (n - 1) / n * nbytes / bw)
        assert mesh.ccl_seconds("reduce_scatter", nbytes, axis) == half
