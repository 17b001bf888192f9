# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
# cython: freethreading_compatible=True
"""The compiled kernels, reached through csrc/cece.h. Private: cece._api is the only caller.

Two ways in. The full path: cece._validation has made every array C-contiguous,
native-endian and of the right dtype and size, and the checks below are a last line of
defence that turns a broken promise into an exception instead of a bad memory access. The
ready path (`ready_*`, at the end): a small call is mostly overhead, so arrays that
cece._validation would hand on unchanged are recognised with a few flag reads and go
straight to the same run code; anything else gets None back and takes the full path. The
rules themselves stay in cece._validation: the ready path only recognises, and asks it for
the scalar options. The GIL is released around every kernel call.
"""

from cpython.long cimport PyLong_AsLongAndOverflow
from libc.math cimport INFINITY
from libc.stdint cimport int64_t
cimport numpy as cnp

import numpy as np

from cece._validation import check_num_threads as _check_num_threads
from cece._validation import check_options as _check_options
from cece._validation import label_error as _label_error

cnp.import_array()


cdef extern from "numpy/arrayobject.h":
    object PyArray_Scalar(void *data, cnp.dtype descr, object base)


cdef extern from "cece.h" nogil:
    ctypedef struct cece_ce_args:
        int64_t outer, classes, inner
        const void *logits
        const int64_t *labels
        const void *probs
        const double *class_weight
        const double *sample_weight
        int64_t ignore_index
        double label_smoothing
        double z_loss
        double softcap
        int from_logits
        void *losses
        void *grad
        double grad_scale
        int num_threads

    ctypedef struct cece_ce_result:
        double loss_sum
        double denominator
        int64_t bad_position

    int CECE_OK
    int cece_cross_entropy_f32(const cece_ce_args *args, cece_ce_result *result)
    int cece_cross_entropy_f64(const cece_ce_args *args, cece_ce_result *result)
    int cece_denominator(const cece_ce_args *args, cece_ce_result *result)
    int cece_normalize_f32(int op, int64_t outer, int64_t classes, int64_t inner,
                           const float *x, float *out, int num_threads)
    int cece_normalize_f64(int op, int64_t outer, int64_t classes, int64_t inner,
                           const double *x, double *out, int num_threads)
    int cece_openmp_enabled()
    int cece_default_threads()
    const char *cece_compiler()
    const char *cece_simd_compiled()
    const char *cece_simd_supported()
    const char *cece_simd_selected()
    int cece_select_simd(const char *name)
    void cece_exp_array_f32(const float *x, float *y, int64_t n, int kind)
    void cece_exp_array_f64(const double *x, double *y, int64_t n, int kind)
    int cece_set_label_exp_table(int on)


LOG_SOFTMAX = 0
SOFTMAX = 1
LOGSUMEXP = 2


cdef inline void *_data(cnp.ndarray a, int typenum, Py_ssize_t size, str name) except? NULL:
    """The data pointer of `a`, after checking what the kernels rely on."""
    if cnp.PyArray_TYPE(a) != typenum or not cnp.PyArray_IS_C_CONTIGUOUS(a) \
            or cnp.PyArray_SIZE(a) != size:
        raise ValueError(f"internal error: {name} is not a C-contiguous array of the "
                         f"expected dtype and size {size}")
    return cnp.PyArray_DATA(a)


cdef inline void *_optional(object a, int typenum, Py_ssize_t size, str name) except? NULL:
    if a is None:
        return NULL
    return _data(<cnp.ndarray?>a, typenum, size, name)


cdef int _typenum(cnp.ndarray logits) except -1:
    cdef int t = cnp.PyArray_TYPE(logits)
    if t != cnp.NPY_FLOAT32 and t != cnp.NPY_FLOAT64:
        raise TypeError("internal error: kernels take float32 or float64 only")
    return t


cdef cece_ce_args _args(cnp.ndarray logits, int64_t outer, int64_t classes, int64_t inner,
                        object labels, object probs, object weight, object sample_weight,
                        int64_t ignore_index, double label_smoothing, double z_loss,
                        double softcap, bint from_logits, object losses, object grad,
                        double grad_scale, int num_threads) except *:
    cdef int t = _typenum(logits)
    cdef Py_ssize_t n = outer * classes * inner
    cdef Py_ssize_t positions = outer * inner
    cdef cece_ce_args a
    a.outer = outer
    a.classes = classes
    a.inner = inner
    a.logits = _data(logits, t, n, "logits")
    a.labels = <const int64_t *>_optional(labels, cnp.NPY_INT64, positions, "labels")
    a.probs = _optional(probs, t, n, "probs")
    a.class_weight = <const double *>_optional(weight, cnp.NPY_FLOAT64, classes, "weight")
    a.sample_weight = <const double *>_optional(sample_weight, cnp.NPY_FLOAT64, positions,
                                                "sample_weight")
    a.ignore_index = ignore_index
    a.label_smoothing = label_smoothing
    a.z_loss = z_loss
    a.softcap = softcap
    a.from_logits = from_logits
    a.losses = _optional(losses, t, positions, "losses")
    a.grad = _optional(grad, t, n, "grad")
    if grad is not None and not cnp.PyArray_ISWRITEABLE(<cnp.ndarray>grad):
        raise ValueError("internal error: grad is read-only")
    if losses is not None and not cnp.PyArray_ISWRITEABLE(<cnp.ndarray>losses):
        raise ValueError("internal error: losses is read-only")
    a.grad_scale = grad_scale
    a.num_threads = num_threads
    if (a.labels == NULL) == (a.probs == NULL):
        raise ValueError("internal error: exactly one of labels and probs is needed")
    return a


# What a cross-entropy call returns.
LOSS = 0
GRAD = 1
LOSS_AND_GRAD = 2


cdef object _scalar(cnp.ndarray like, double value):
    """`like.dtype.type(value)` without the Python call: a float32 one rounds as NumPy does."""
    cdef float single = <float>value
    if cnp.PyArray_TYPE(like) == cnp.NPY_FLOAT32:
        return PyArray_Scalar(&single, like.descr, None)
    return PyArray_Scalar(&value, like.descr, None)


cdef cnp.ndarray _without_axis(cnp.ndarray x, int axis):
    """A new array of x's dtype and shape with `axis` removed (the batch shape)."""
    cdef cnp.npy_intp dims[64]  # NumPy's most dimensions (32 before NumPy 2)
    cdef int nd = cnp.PyArray_NDIM(x), d, k = 0
    cdef cnp.npy_intp *shape = cnp.PyArray_DIMS(x)
    for d in range(nd):
        if d != axis:
            dims[k] = shape[d]
            k += 1
    return <cnp.ndarray>cnp.PyArray_EMPTY(nd - 1, dims, cnp.PyArray_TYPE(x), 0)


cdef object _run_ce(cece_ce_args *a, cnp.ndarray logits, int axis, object target,
                    object reduction, int want, object grad_out, bint in_place):
    """One cross-entropy call on ready arrays (`a` without losses and grad): allocations,
    the denominator pass when needed, the kernel, the reduced loss."""
    cdef cnp.ndarray losses = None, grad = None
    cdef cece_ce_args d
    cdef cece_ce_result r
    cdef int rc
    cdef bint single = cnp.PyArray_TYPE(logits) == cnp.NPY_FLOAT32
    cdef bint none = reduction == "none", mean = reduction == "mean"
    a.losses = NULL
    a.grad = NULL
    a.grad_scale = 1.0
    if none:
        losses = _without_axis(logits, axis)
        a.losses = cnp.PyArray_DATA(losses)
    if want != LOSS:
        if grad_out is None:
            grad = <cnp.ndarray>cnp.PyArray_EMPTY(cnp.PyArray_NDIM(logits),
                                                  cnp.PyArray_DIMS(logits),
                                                  cnp.PyArray_TYPE(logits), 0)
        else:
            grad = <cnp.ndarray?>grad_out
            if not cnp.PyArray_ISWRITEABLE(grad):
                raise ValueError("internal error: grad is read-only")
        a.grad = _data(grad, cnp.PyArray_TYPE(logits), cnp.PyArray_SIZE(logits), "grad")
        # The gradient's scale needs the mean's denominator before the sweep, and an
        # in-place sweep must not start on a bad label: both come from one O(batch) pass.
        if mean or (in_place and a.labels != NULL):
            d = a[0]
            d.label_smoothing = 0.0
            d.z_loss = 0.0
            d.softcap = 0.0
            d.from_logits = 1
            d.losses = NULL
            d.grad = NULL
            with nogil:
                rc = cece_denominator(&d, &r)
            if rc != CECE_OK:
                raise MemoryError("cece: out of memory for the per-item partial sums")
            if r.bad_position >= 0:
                raise _label_error(target, r.bad_position, a.classes)
            if mean:
                a.grad_scale = 1.0 / r.denominator if r.denominator != 0.0 else INFINITY
    with nogil:
        if single:
            rc = cece_cross_entropy_f32(a, &r)
        else:
            rc = cece_cross_entropy_f64(a, &r)
    if rc != CECE_OK:
        raise MemoryError("cece: out of memory for the per-item partial sums")
    if r.bad_position >= 0:
        raise _label_error(target, r.bad_position, a.classes)
    if none:
        loss = losses[()]
    elif reduction == "sum":
        loss = _scalar(logits, r.loss_sum)
    elif r.denominator != 0.0:
        loss = _scalar(logits, r.loss_sum / r.denominator)
    else:
        with np.errstate(divide="ignore", invalid="ignore"):
            loss = logits.dtype.type(np.float64(r.loss_sum) / np.float64(0.0))
    if want == LOSS:
        return loss
    return grad if want == GRAD else (loss, grad)


def cross_entropy(call, int want, grad_out, bint in_place):
    """Run a call validated by cece._validation.prepare_cross_entropy: the loss, the
    gradient (into grad_out, already checked, when given) or both, as `want` says."""
    cdef double softcap = 0.0 if call.softcap is None else call.softcap
    cdef cece_ce_args a = _args(call.logits, call.outer, call.classes, call.inner, call.labels,
                                call.probs, call.weight, call.sample_weight,
                                call.ignore_index, call.label_smoothing, call.z_loss, softcap,
                                call.from_logits, None, None, 1.0, call.num_threads)
    return _run_ce(&a, call.logits, call.axis, call.target, call.reduction, want, grad_out,
                   in_place)


cdef object _normalize(int op, cnp.ndarray x, int axis, int64_t outer, int64_t classes,
                       int64_t inner, object out, int num_threads):
    """log_softmax / softmax into `out` (None: a new array like x), or logsumexp into a new
    array of the batch shape, returned as NumPy returns `out[()]`."""
    cdef int t = _typenum(x)
    cdef cnp.ndarray o
    if op == LOGSUMEXP:
        o = _without_axis(x, axis)
    elif out is None:
        o = <cnp.ndarray>cnp.PyArray_EMPTY(cnp.PyArray_NDIM(x), cnp.PyArray_DIMS(x), t, 0)
    else:
        o = <cnp.ndarray?>out
    cdef Py_ssize_t n_out = outer * inner if op == LOGSUMEXP else outer * classes * inner
    cdef void *px = _data(x, t, outer * classes * inner, "x")
    cdef void *po = _data(o, t, n_out, "out")
    if not cnp.PyArray_ISWRITEABLE(o):
        raise ValueError("internal error: out is read-only")
    if op < 0 or op > 2:
        raise ValueError("internal error: unknown normalisation")
    with nogil:
        if t == cnp.NPY_FLOAT32:
            cece_normalize_f32(op, outer, classes, inner, <const float *>px, <float *>po,
                               num_threads)
        else:
            cece_normalize_f64(op, outer, classes, inner, <const double *>px, <double *>po,
                               num_threads)
    return o[()] if op == LOGSUMEXP else o


def normalize(int op, cnp.ndarray x, int axis, int64_t outer, int64_t classes, int64_t inner,
              out, int num_threads):
    """Run log_softmax / softmax / logsumexp on an x validated by cece._validation (out:
    None, or already checked by check_normalize_out)."""
    return _normalize(op, x, axis, outer, classes, inner, out, num_threads)


# The ready path. Each test below is the condition under which cece._validation returns an
# argument unchanged (as_compute_array, _target, check_out and the overlap checks); failing
# one is not an error here, only a reason to take the full path.

cdef bint _ready_float(object x):
    """An exact ndarray of native float32 or float64, C-contiguous, at least 1-d."""
    if type(x) is not cnp.ndarray:
        return False
    cdef cnp.ndarray a = <cnp.ndarray>x
    cdef int t = cnp.PyArray_TYPE(a)
    return ((t == cnp.NPY_FLOAT32 or t == cnp.NPY_FLOAT64) and cnp.PyArray_NDIM(a) > 0
            and cnp.PyArray_ISNOTSWAPPED(a) and cnp.PyArray_IS_C_CONTIGUOUS(a))


cdef bint _ready_as(object x, cnp.ndarray like, int typenum):
    """An exact ndarray of `typenum`, native, C-contiguous, with like's shape."""
    if type(x) is not cnp.ndarray:
        return False
    cdef cnp.ndarray a = <cnp.ndarray>x
    cdef int d, nd = cnp.PyArray_NDIM(like)
    if (cnp.PyArray_TYPE(a) != typenum or cnp.PyArray_NDIM(a) != nd
            or not cnp.PyArray_ISNOTSWAPPED(a) or not cnp.PyArray_IS_C_CONTIGUOUS(a)):
        return False
    for d in range(nd):
        if cnp.PyArray_DIMS(a)[d] != cnp.PyArray_DIMS(like)[d]:
            return False
    return True


cdef bint _ready_labels(object target, cnp.ndarray logits, int axis):
    """Native int64 class indices, C-contiguous, of the logits' shape without `axis`."""
    if type(target) is not cnp.ndarray:
        return False
    cdef cnp.ndarray t = <cnp.ndarray>target
    cdef int d, nd = cnp.PyArray_NDIM(logits)
    if (cnp.PyArray_TYPE(t) != cnp.NPY_INT64 or cnp.PyArray_NDIM(t) != nd - 1
            or not cnp.PyArray_ISNOTSWAPPED(t) or not cnp.PyArray_IS_C_CONTIGUOUS(t)):
        return False
    for d in range(nd - 1):
        if cnp.PyArray_DIMS(t)[d] != cnp.PyArray_DIMS(logits)[d + (d >= axis)]:
            return False
    return True


cdef bint _disjoint(cnp.ndarray a, cnp.ndarray b):
    """No byte in common, by np.may_share_memory's bounds test; empty arrays, whose bounds
    that test treats specially, are never recognised."""
    cdef char *pa = <char *>cnp.PyArray_DATA(a)
    cdef char *pb = <char *>cnp.PyArray_DATA(b)
    cdef cnp.npy_intp na = cnp.PyArray_NBYTES(a), nb = cnp.PyArray_NBYTES(b)
    return na > 0 and nb > 0 and (pa + na <= pb or pb + nb <= pa)


cdef int _ready_axis(object axis, int ndim):
    """A plain int axis in range, made non-negative; -1 for anything else."""
    cdef int overflow = 0
    if type(axis) is not int:
        return -1
    cdef long v = PyLong_AsLongAndOverflow(axis, &overflow)
    if overflow or v < -ndim or v >= ndim:
        return -1
    return <int>(v + ndim if v < 0 else v)


cdef void _split(cnp.ndarray x, int axis, int64_t *outer, int64_t *inner):
    cdef int d
    outer[0] = 1
    inner[0] = 1
    for d in range(cnp.PyArray_NDIM(x)):
        if d < axis:
            outer[0] *= cnp.PyArray_DIMS(x)[d]
        elif d > axis:
            inner[0] *= cnp.PyArray_DIMS(x)[d]


def ready_cross_entropy(int want, logits, target, axis, weight, sample_weight, ignore_index,
                        label_smoothing, reduction, from_logits, z_loss, softcap,
                        num_threads, grad_out):
    """The call of cece._api with ready arrays run as the full path would run it; None
    when an argument needs cece._validation's conversions or checks."""
    if weight is not None or sample_weight is not None or not _ready_float(logits):
        return None
    cdef cnp.ndarray x = <cnp.ndarray>logits
    cdef int t = cnp.PyArray_TYPE(x)
    cdef int ax = _ready_axis(axis, cnp.PyArray_NDIM(x))
    if ax < 0 or cnp.PyArray_DIMS(x)[ax] == 0:
        return None
    cdef bint labels = _ready_labels(target, x, ax)
    if not labels and not _ready_as(target, x, t):
        return None
    cdef cnp.ndarray tgt = <cnp.ndarray>target
    cdef bint in_place = grad_out is logits
    if grad_out is not None:
        if not in_place and not (_ready_as(grad_out, x, t) and _disjoint(grad_out, x)):
            return None
        if not cnp.PyArray_ISWRITEABLE(<cnp.ndarray>grad_out) \
                or not _disjoint(<cnp.ndarray>grad_out, tgt):
            return None
    eps, flag, lam, cap, ignore, threads = _check_options(
        label_smoothing, reduction, from_logits, z_loss, softcap, ignore_index, num_threads)
    cdef cece_ce_args a
    a.classes = cnp.PyArray_DIMS(x)[ax]
    _split(x, ax, &a.outer, &a.inner)
    a.logits = cnp.PyArray_DATA(x)
    a.labels = <const int64_t *>cnp.PyArray_DATA(tgt) if labels else NULL
    a.probs = NULL if labels else cnp.PyArray_DATA(tgt)
    a.class_weight = NULL
    a.sample_weight = NULL
    a.ignore_index = ignore
    a.label_smoothing = eps
    a.z_loss = lam
    a.softcap = 0.0 if cap is None else cap
    a.from_logits = flag
    a.num_threads = threads
    return _run_ce(&a, x, ax, target, reduction, want, grad_out, in_place)


def ready_normalize(int op, x, axis, out, num_threads):
    """log_softmax / softmax / logsumexp of a ready x (and out) run as the full path would
    run it; None when an argument needs cece._validation."""
    if not _ready_float(x):
        return None
    cdef cnp.ndarray a = <cnp.ndarray>x
    cdef int ax = _ready_axis(axis, cnp.PyArray_NDIM(a))
    if ax < 0 or cnp.PyArray_DIMS(a)[ax] == 0:
        return None
    if out is not None:
        if out is not x and not (_ready_as(out, a, cnp.PyArray_TYPE(a)) and _disjoint(out, a)):
            return None
        if not cnp.PyArray_ISWRITEABLE(<cnp.ndarray>out):
            return None
    cdef int threads = 0 if num_threads is None else _check_num_threads(num_threads)
    cdef int64_t outer, inner
    _split(a, ax, &outer, &inner)
    return _normalize(op, a, ax, outer, cnp.PyArray_DIMS(a)[ax], inner, out, threads)


def exp_array(cnp.ndarray x, cnp.ndarray out, bint shifted=False, bint label=False):
    """The kernels' own vector exp at the selected level (for accuracy tests); `shifted`: the
    form for max-shifted arguments (x <= 0) that the kernels' sums of exps use; `label`: the
    table form of the AVX-512 float32 label-shifted forward (its scalar model at the other
    levels; float32 only)."""
    cdef int t = _typenum(x)
    cdef Py_ssize_t n = cnp.PyArray_SIZE(x)
    cdef void *px = _data(x, t, n, "x")
    cdef void *po = _data(out, t, n, "out")
    cdef int kind = 2 if label else (1 if shifted else 0)
    if label and t != cnp.NPY_FLOAT32:
        raise TypeError("the label exp is a float32 form")
    with nogil:
        if t == cnp.NPY_FLOAT32:
            cece_exp_array_f32(<const float *>px, <float *>po, n, kind)
        else:
            cece_exp_array_f64(<const double *>px, <double *>po, n, kind)
    return out


def label_exp_table(bint on):
    """Whether the AVX-512 float32 label-shifted forward takes its exps by the table form (the
    default) or by the polynomial of the other levels (for the tests); returns the old setting."""
    return bool(cece_set_label_exp_table(on))


def select_simd(str name=None):
    """Switch the kernels to an instruction-set level; None picks the best one."""
    cdef bytes b = (name or "").encode("ascii")
    if cece_select_simd(b) != 0:
        raise ValueError(
            f"SIMD level {name!r} is not available; this build has "
            f"{cece_simd_compiled().decode()} and this CPU runs {cece_simd_supported().decode()}"
        )


def build_info():
    """Facts about this build and CPU, for cece.show_config()."""
    return {
        "compiler": cece_compiler().decode(),
        "openmp": bool(cece_openmp_enabled()),
        "default_threads": cece_default_threads(),
        "simd_compiled": cece_simd_compiled().decode().split(),
        "simd_supported": cece_simd_supported().decode().split(),
        "simd_selected": cece_simd_selected().decode(),
    }
