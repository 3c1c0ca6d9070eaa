"""conv2d against F.conv2d (torch.nn.Conv2d) and maxpool2d against F.max_pool2d in float64:
values and every gradient, over random shapes, strides and paddings; the pool's ties routed
exactly as autograd routes them."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from handgrad.engine.layers import (
    conv2d_backward,
    conv2d_forward,
    maxpool2d_backward,
    maxpool2d_forward,
)
from handgrad.engine.layers.conv import im2col
from support import TOL, autograd_vjp, f64, scaled_err, seeds


@st.composite
def conv_cases(draw):
    N, C, Fn = draw(st.integers(1, 4)), draw(st.integers(1, 4)), draw(st.integers(1, 5))
    HH, WW = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    stride, padding = draw(st.integers(1, 3)), draw(st.integers(0, 2))
    H = draw(st.integers(max(1, HH - 2 * padding), 9))
    W = draw(st.integers(max(1, WW - 2 * padding), 9))
    return (N, C, H, W), (Fn, C, HH, WW), stride, padding, draw(seeds)


@settings(max_examples=50)
@given(conv_cases())
def test_conv2d_matches_torch_conv2d(case):
    x_shape, w_shape, stride, padding, seed = case
    gen = torch.Generator().manual_seed(seed)
    x, W = (torch.randn(s, generator=gen, dtype=f64) for s in (x_shape, w_shape))
    b = torch.randn(w_shape[0], generator=gen, dtype=f64)
    out, cache = conv2d_forward(x, W, b, stride, padding)
    dout = torch.randn(out.shape, generator=gen, dtype=f64)
    expected, (dx_t, dW_t, db_t) = autograd_vjp(
        lambda x, W, b: F.conv2d(x, W, b, stride=stride, padding=padding), (x, W, b), dout)
    dx, grads = conv2d_backward(dout, cache)
    assert out.shape == expected.shape
    assert scaled_err(out, expected) < TOL
    assert scaled_err(dx, dx_t) < TOL
    assert scaled_err(grads["weight"], dW_t) < TOL
    assert scaled_err(grads["bias"], db_t) < TOL


def test_conv2d_refuses_mismatched_channels_and_a_kernel_that_does_not_fit():
    x = torch.randn(1, 3, 4, 4, dtype=f64)
    with pytest.raises(ValueError, match="3 channels, the filters 2"):
        conv2d_forward(x, torch.randn(5, 2, 3, 3, dtype=f64), torch.zeros(5, dtype=f64))
    with pytest.raises(ValueError, match="5x5 kernel does not fit a 4x4 input"):
        conv2d_forward(x, torch.randn(5, 3, 5, 5, dtype=f64), torch.zeros(5, dtype=f64))


@st.composite
def pool_cases(draw):
    k = draw(st.integers(1, 4))
    stride = draw(st.integers(1, 4))
    padding = draw(st.integers(0, k // 2))
    H = draw(st.integers(max(1, k - 2 * padding), 9))
    W = draw(st.integers(max(1, k - 2 * padding), 9))
    ties = draw(st.booleans())
    return (draw(st.integers(1, 3)), draw(st.integers(1, 3)), H, W), k, stride, padding, ties, \
        draw(seeds)


@settings(max_examples=60)
@given(pool_cases())
def test_maxpool2d_matches_torch_including_ties(case):
    shape, k, stride, padding, ties, seed = case
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=gen, dtype=f64)
    if ties:  # a few distinct values: most windows hold tied maxima
        x = torch.randint(-1, 2, shape, generator=gen).to(f64)
    out, cache = maxpool2d_forward(x, k, stride, padding)
    dout = torch.randn(out.shape, generator=gen, dtype=f64)
    expected, (dx_t,) = autograd_vjp(lambda x: F.max_pool2d(x, k, stride, padding), (x,), dout)
    dx, grads = maxpool2d_backward(dout, cache)
    assert grads == {}
    assert torch.equal(out, expected)
    assert torch.equal(dx != 0, dx_t != 0)   # the same inputs receive a gradient
    assert scaled_err(dx, dx_t) < TOL


def test_maxpool2d_tie_goes_to_the_first_maximum_in_row_major_order():
    x = torch.tensor([[[[1.0, 2.0], [2.0, 2.0]]]], dtype=f64)
    out, cache = maxpool2d_forward(x, 2)
    dx, _ = maxpool2d_backward(torch.ones_like(out), cache)
    assert dx.tolist() == [[[[0.0, 1.0], [0.0, 0.0]]]]


@settings(max_examples=30)
@given(pool_cases())
def test_autograd_through_maxpool2d_forward_routes_ties_like_torch(case):
    """The autograd engine differentiates this forward: its gradient, ties included, is
    torch's max_pool2d's (and the hand-written backward's)."""
    shape, k, stride, padding, _, seed = case
    gen = torch.Generator().manual_seed(seed)
    x = torch.randint(-1, 2, shape, generator=gen).to(f64)
    dout = torch.randn(F.max_pool2d(x, k, stride, padding).shape, generator=gen, dtype=f64)
    _, (ours,) = autograd_vjp(lambda x: maxpool2d_forward(x, k, stride, padding)[0], (x,), dout)
    _, (theirs,) = autograd_vjp(lambda x: F.max_pool2d(x, k, stride, padding), (x,), dout)
    assert torch.equal(ours, theirs)


def test_maxpool2d_windows_of_minus_infinity_and_nan_stay_inside_the_image():
    """A window whose pixels are all -inf sends its gradient to its first pixel inside the
    image, as torch does (not into the -inf padding); a window holding NaN outputs NaN, as
    torch does, and its gradient stays on the image."""
    x = torch.full((1, 1, 3, 3), float("-inf"), dtype=f64)
    x[0, 0, 2, 2] = 1.0
    out, cache = maxpool2d_forward(x, 3, 2, 1)
    expected, (dx_t,) = autograd_vjp(lambda x: F.max_pool2d(x, 3, 2, 1), (x,), torch.ones_like(out))
    dx, _ = maxpool2d_backward(torch.ones_like(out), cache)
    assert torch.equal(out, expected) and torch.equal(dx, dx_t)
    x[0, 0, 1, 1] = float("nan")
    out, cache = maxpool2d_forward(x, 3, 2, 1)
    dx, _ = maxpool2d_backward(torch.ones_like(out), cache)
    assert out.isnan().all() and dx.sum() == out.numel()


def test_maxpool2d_and_conv2d_take_inputs_in_any_memory_layout():
    """A conv's output read as (N, C, H, W) may be stored channel-major or channels-last."""
    gen = torch.Generator().manual_seed(0)
    base = torch.randint(-2, 3, (3, 2, 6, 6), generator=gen).to(f64)
    W, b = torch.randn(4, 3, 3, 3, generator=gen, dtype=f64), torch.zeros(4, dtype=f64)
    channel_major = base.transpose(0, 1)
    layouts = (channel_major, channel_major.contiguous(memory_format=torch.channels_last))
    for x in layouts:
        out, cache = maxpool2d_forward(x, 2)
        dout = torch.randn(out.shape, generator=gen, dtype=f64)
        expected, (dx_t,) = autograd_vjp(lambda x: F.max_pool2d(x, 2), (x,), dout)
        assert torch.equal(out, expected) and torch.equal(maxpool2d_backward(dout, cache)[0], dx_t)
        out, cache = conv2d_forward(x, W, b, 1, 1)
        dout = torch.randn(out.shape, generator=gen, dtype=f64)
        _, (dx_t, dW_t) = autograd_vjp(lambda x, W: F.conv2d(x, W, b, padding=1), (x, W), dout)
        dx, grads = conv2d_backward(dout, cache)
        assert scaled_err(dx, dx_t) < TOL and scaled_err(grads["weight"], dW_t) < TOL


def test_maxpool2d_refuses_padding_beyond_half_the_kernel():
    with pytest.raises(ValueError, match="padding must be at most half the kernel size"):
        maxpool2d_forward(torch.randn(1, 1, 4, 4, dtype=f64), 2, padding=2)


@pytest.mark.parametrize("shape,k", [((2, 3, 8, 8), 2), ((1, 2, 6, 9), 3), ((2, 1, 7, 7), 2)])
def test_maxpool2d_tiling_and_ragged_windows_match_torch(shape, k):
    """Windows that tile the image (put back in one copy) and ones that leave a ragged edge."""
    x = torch.randint(-1, 2, shape).to(f64)
    out, cache = maxpool2d_forward(x, k)
    dout = torch.randn(out.shape, dtype=f64)
    expected, (dx_t,) = autograd_vjp(lambda x: F.max_pool2d(x, k), (x,), dout)
    dx, _ = maxpool2d_backward(dout, cache)
    assert torch.equal(out, expected) and torch.equal(dx, dx_t)


@settings(max_examples=30)
@given(conv_cases())
def test_im2col_is_unfold(case):
    x_shape, (_, _, HH, WW), stride, padding, seed = case
    x = torch.randn(x_shape, generator=torch.Generator().manual_seed(seed), dtype=f64)
    unfolded = F.unfold(x, (HH, WW), padding=padding, stride=stride)   # (N, C·HH·WW, L)
    assert torch.equal(im2col(x, (HH, WW), stride, padding), unfolded)


def test_the_backward_reuses_its_workspace_and_gives_the_same_gradients():
    """One buffer for the columns, made once for these shapes, rebuilt for new ones; the
    gradients are those without a workspace, step after step."""
    gen = torch.Generator().manual_seed(0)
    workspace = {}
    buffers = []
    for shape in [(4, 3, 8, 8), (4, 3, 8, 8), (2, 3, 6, 6)]:
        x = torch.randn(shape, generator=gen, dtype=f64)
        w, b = torch.randn(5, 3, 3, 3, generator=gen, dtype=f64), torch.zeros(5, dtype=f64)
        out, cache = conv2d_forward(x, w, b, 1, 1)
        dout = torch.randn(out.shape, generator=gen, dtype=f64)
        expected = conv2d_backward(dout, cache)
        got = conv2d_backward(dout, cache, True, workspace)
        assert torch.equal(got[0], expected[0])
        assert all(torch.equal(got[1][k], expected[1][k]) for k in ("weight", "bias"))
        buffers.append(workspace["cols"].data_ptr())
    assert buffers[0] == buffers[1] and workspace["cols"].shape[0] == 2
