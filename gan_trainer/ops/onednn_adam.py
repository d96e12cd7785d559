"""The fused Adam's arithmetic on oneDNN: four passes on the team's threads, Chainer's bits.

:class:`gan_trainer.ops.Adam` runs Chainer's Adam update on one flat
buffer per network: thirteen NumPy operations, each a pass over the
parameters on one thread (the default run's G has 0.35 million, the
``digits28`` G 0.76 million). oneDNN's element-wise ``binary`` primitive
takes a chain of post-ops, each a further binary or element-wise
operation applied to the value in registers, so the same operations in
the same order become four primitives, run on the OpenMP team the
convolutions use:

1. ``m = ((g - m) * (1 - beta1)) + m``
2. ``v = (((g * g) - v) * (1 - beta2)) + v``
3. ``t = sqrt(v + 0) + eps``
4. ``p = ((t * m) * (-eta)) + p``, after NumPy's ``t = alpha_t / t``
   (oneDNN has no scalar-divided-by-tensor; one NumPy pass)

Every step rounds as NumPy's float32 operation does (a product, a
difference, a correctly rounded square root; the scalars are float32, as
NumPy casts a Python float against a float32 array), so the parameters
and moments are Chainer's bit for bit (``tests/test_ops.py`` compares
them over five steps). The ``+ 0`` of step 3 only lets a
binary primitive carry the square root (an element-wise primitive with
post-ops takes oneDNN's reference kernel here, many times slower); it
changes nothing, ``v`` being never ``-0``. Element-wise, so no team size
changes a bit. ``benchmarks/profile_run.py --ab adam`` compares this
with the NumPy passes in one run (figures in benchmarks/RESULTS.md).
Float64, other devices and the switches off keep the NumPy passes.
"""

from __future__ import annotations

import numpy

from gan_trainer.ops import dnnl
from gan_trainer.ops._common import onednn_enabled

#: False sends the fused Adam back to its NumPy passes while everything else
#: stays on oneDNN (``benchmarks/profile_run.py --ab adam``).
ENABLED = True


class Update:
    """The four primitives of Adam's update for flat float32 buffers of ``n`` values."""

    def __init__(self, n: int):
        lib = dnnl.library()
        md = dnnl.memory_desc((n,), (1,))
        one = dnnl.memory_desc((1,), (1,))  # a float32 scalar, broadcast
        attrs = []

        def binary(alg, src1, post_ops):
            attr = dnnl.attr_of(post_ops)
            attrs.append(attr)
            pd = dnnl.create_pd('binary', lib.engine, dnnl.BINARY[alg], md, src1, md, attr)
            names = ['src', 'src1', 'dst'] + [f'post_op_{i}' for i, op in enumerate(post_ops)
                                              if op[0] == 'binary']
            return dnnl.Primitive(pd, names)

        try:
            self.m = binary('sub', md, [('binary', 'mul', one), ('binary', 'add', md)])
            self.v = binary('mul', md, [('binary', 'sub', md), ('binary', 'mul', one),
                                        ('binary', 'add', md)])
            self.t = binary('add', one, [('eltwise', 'sqrt', 0.0), ('binary', 'add', one)])
            self.p = binary('mul', md, [('binary', 'mul', one), ('binary', 'add', md)])
        finally:
            for attr in attrs:
                lib.primitive_attr_destroy(attr)
            lib.memory_desc_destroy(md)
            lib.memory_desc_destroy(one)
        self.zero = numpy.zeros(1, numpy.float32)

    def __call__(self, p, m, v, g, tmp, *, beta1, beta2, eps, eta, alpha_t) -> None:
        f32 = numpy.float32
        self.m.run(g, m, m, numpy.array([1.0 - beta1], f32), m)
        self.v.run(g, g, v, v, numpy.array([1.0 - beta2], f32), v)
        self.t.run(v, self.zero, tmp, numpy.array([eps], f32))
        numpy.divide(alpha_t, tmp, out=tmp)
        self.p.run(tmp, m, p, numpy.array([-eta], f32), p)


def update_for(buffer: numpy.ndarray) -> Update | None:
    """The cached primitives for flat buffers like ``buffer``, or None where the
    NumPy passes must run (not float32 NumPy, oneDNN off or not loaded)."""
    if (not (ENABLED and onednn_enabled()) or type(buffer) is not numpy.ndarray
            or buffer.dtype != numpy.float32 or buffer.ndim != 1
            or dnnl.library() is None):
        return None
    n = buffer.size
    return dnnl.cached(('adam', n), lambda: Update(n))
