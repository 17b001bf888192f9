"""Interoperability: whatever NumPy can turn into an array is accepted, and what comes back is
always NumPy (an ndarray, or a NumPy scalar for the reduced losses and 1-d logsumexp).

Covered: nested lists and tuples, Python and NumPy scalars inside them, memoryviews and
other buffer-protocol objects (array.array, bytearray-backed views), objects with
``__array__`` or ``__array_interface__``, read-only and non-contiguous arrays, and PyTorch
CPU tensors, directly (through ``__array__``) and through DLPack (``np.from_dlpack``, zero
copy, so ``out=`` can write into a tensor's memory). The PyTorch tests skip without torch.
"""

from __future__ import annotations

import array

import numpy as np
import pytest

import cece
import cece.reference as ref

LOGITS = [[2.0, 1.0, 0.1], [0.5, 2.5, 0.3], [-1.0, 0.0, 1.0], [3.0, -2.0, 0.0]]
LABELS = [0, 1, 2, 0]
LOGITS_NP = np.array(LOGITS)
LABELS_NP = np.array(LABELS)


def _expected(reduction="mean"):
    return ref.cross_entropy(LOGITS_NP, LABELS_NP, reduction=reduction)


def assert_numpy_result(value, dtype=np.float64, *, array=False):
    """value is a NumPy scalar (np.generic) or ndarray of `dtype`, never a Python float or a
    foreign object."""
    if array:
        assert type(value) is np.ndarray, type(value)
    else:
        assert isinstance(value, np.generic), type(value)
    assert value.dtype == np.dtype(dtype)


# ---- plain Python and buffer-protocol inputs -----------------------------------------------


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_nested_lists(reduction):
    loss = cece.cross_entropy(LOGITS, LABELS, reduction=reduction)
    assert_numpy_result(loss, array=reduction == "none")
    np.testing.assert_allclose(loss, _expected(reduction), rtol=1e-12)


def test_tuples_and_numpy_scalars_inside_lists():
    logits = tuple(tuple(np.float64(v) for v in row) for row in LOGITS)
    labels = tuple(np.int32(v) for v in LABELS)
    loss = cece.cross_entropy(logits, labels)
    assert_numpy_result(loss)
    np.testing.assert_allclose(loss, _expected(), rtol=1e-12)


def test_integer_lists_compute_in_float64():
    loss = cece.cross_entropy([[2, 1, 0], [0, 3, 1]], [0, 1])
    assert_numpy_result(loss, np.float64)


def test_memoryview_and_array_module():
    flat32 = array.array("f", np.asarray(LOGITS, np.float32).ravel().tolist())
    view = memoryview(flat32).cast("B").cast("f", shape=[4, 3])
    labels = memoryview(array.array("q", LABELS))
    loss = cece.cross_entropy(view, labels)
    assert_numpy_result(loss, np.float32)
    np.testing.assert_allclose(loss, _expected(), rtol=1e-5)
    # array.array itself is a 1-d buffer: one row of logits
    lse = cece.logsumexp(array.array("d", LOGITS[0]))
    assert_numpy_result(lse)
    np.testing.assert_allclose(lse, np.log(np.exp(LOGITS_NP[0]).sum()), rtol=1e-12)


def test_readonly_buffer_is_read_not_written():
    raw = bytes(np.asarray(LOGITS, np.float64).tobytes())  # an immutable buffer
    logits = np.frombuffer(raw, np.float64).reshape(4, 3)
    assert not logits.flags.writeable
    grad = cece.cross_entropy_grad(logits, LABELS)
    assert_numpy_result(grad, array=True)
    assert grad.flags.writeable and not np.shares_memory(grad, logits)
    np.testing.assert_allclose(grad, ref.cross_entropy_grad(LOGITS_NP, LABELS_NP), rtol=1e-12,
                               atol=1e-15)


class _ArrayProtocol:
    """Only __array__ (as many array containers implement it)."""

    def __init__(self, data):
        self._data = np.asarray(data)

    def __array__(self, dtype=None, copy=None):
        return self._data if dtype is None else self._data.astype(dtype)


class _ArrayInterface:
    """Only __array_interface__ (the old NumPy protocol)."""

    def __init__(self, data):
        self._keep = np.ascontiguousarray(data)
        self.__array_interface__ = self._keep.__array_interface__


@pytest.mark.parametrize("wrap", [_ArrayProtocol, _ArrayInterface])
def test_array_protocols(wrap):
    loss = cece.cross_entropy(wrap(LOGITS_NP), wrap(LABELS_NP))
    assert_numpy_result(loss)
    np.testing.assert_allclose(loss, _expected(), rtol=1e-12)
    probs = cece.softmax(wrap(LOGITS_NP))
    assert_numpy_result(probs, array=True)
    np.testing.assert_allclose(probs.sum(axis=-1), 1.0, rtol=1e-12)


def test_every_function_returns_numpy():
    x = LOGITS_NP.astype(np.float32)
    for value, is_array in [
        (cece.cross_entropy(x, LABELS), False),
        (cece.cross_entropy(x, LABELS, reduction="sum"), False),
        (cece.cross_entropy(x, LABELS, reduction="none"), True),
        (cece.cross_entropy_grad(x, LABELS), True),
        (cece.log_softmax(x), True),
        (cece.softmax(x), True),
        (cece.logsumexp(x), True),
        (cece.logsumexp(x[0]), False),
    ]:
        assert_numpy_result(value, np.float32, array=is_array)
    loss, grad = cece.cross_entropy_with_grad(x, LABELS)
    assert_numpy_result(loss, np.float32)
    assert_numpy_result(grad, np.float32, array=True)
    # a 1-d batch of one position with reduction="none" is a 0-d result, given as a scalar
    assert_numpy_result(cece.cross_entropy(x[0], np.int64(1), reduction="none"), np.float32)


# ---- PyTorch CPU tensors -------------------------------------------------------------------


@pytest.fixture
def torch():
    return pytest.importorskip("torch", reason="PyTorch is not installed (pip install 'cece[peers]')")


@pytest.mark.parametrize("dtype_name", ["float32", "float64", "float16"])
def test_torch_tensors_via_array_protocol(torch, dtype_name):
    dtype = getattr(torch, dtype_name)
    logits = torch.tensor(LOGITS, dtype=dtype)
    labels = torch.tensor(LABELS)  # int64
    compute = np.float32 if dtype_name in ("float32", "float16") else np.float64
    loss = cece.cross_entropy(logits, labels)
    assert_numpy_result(loss, compute)
    expected = torch.nn.functional.cross_entropy(logits.double(), labels).item()
    np.testing.assert_allclose(float(loss), expected, rtol=1e-3 if dtype_name == "float16" else 1e-6)
    loss2, grad = cece.cross_entropy_with_grad(logits, labels)
    assert_numpy_result(grad, compute, array=True)
    assert grad.shape == tuple(logits.shape)
    # the tensor is untouched and stays a tensor
    assert isinstance(logits, torch.Tensor)
    np.testing.assert_array_equal(logits.numpy(), np.asarray(LOGITS, logits.numpy().dtype))


def test_torch_non_contiguous_and_class_axis(torch):
    gen = torch.Generator().manual_seed(0)
    seg = torch.randn(2, 5, 3, 4, generator=gen)  # (N, C, H, W)
    target = torch.randint(0, 5, (2, 3, 4), generator=gen)
    loss = cece.cross_entropy(seg, target, axis=1)
    expected = torch.nn.functional.cross_entropy(seg.double(), target).item()
    np.testing.assert_allclose(float(loss), expected, rtol=1e-6)
    transposed = torch.randn(3, 6, generator=gen).T  # (6, 3), not contiguous
    assert not transposed.is_contiguous()
    labels = torch.tensor([0, 1, 2, 0, 1, 2])
    np.testing.assert_allclose(
        float(cece.cross_entropy(transposed, labels)),
        torch.nn.functional.cross_entropy(transposed.double(), labels).item(), rtol=1e-6)


def test_torch_via_dlpack_zero_copy(torch):
    logits_t = torch.tensor(LOGITS, dtype=torch.float32)
    logits = np.from_dlpack(logits_t)  # a view of the tensor's memory
    assert logits.ctypes.data == logits_t.data_ptr()
    labels = np.from_dlpack(torch.tensor(LABELS))
    loss = cece.cross_entropy(logits, labels)
    assert_numpy_result(loss, np.float32)
    # out= into a DLPack view writes straight into a torch tensor's memory
    grad_t = torch.empty_like(logits_t)
    grad_view = np.from_dlpack(grad_t)
    result = cece.cross_entropy_grad(logits, labels, out=grad_view)
    assert result is grad_view
    expected = torch.func.grad(lambda z: torch.nn.functional.cross_entropy(z, torch.tensor(LABELS)))(
        logits_t)
    torch.testing.assert_close(grad_t, expected, rtol=1e-5, atol=1e-6)


def test_torch_tensor_that_requires_grad_is_refused_clearly(torch):
    logits = torch.tensor(LOGITS, requires_grad=True)
    with pytest.raises((RuntimeError, TypeError), match="grad|detach"):
        cece.cross_entropy(logits, LABELS)
    cece.cross_entropy(logits.detach(), LABELS)  # the documented way
