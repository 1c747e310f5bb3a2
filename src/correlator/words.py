"""Eight bytes at a time in compiled byte kernels: unaligned 64-bit loads and stores.

A kernel that walks a body byte by byte (the JSON scanner, the cutting of
strings out of it) spends most of its time on the loop itself, not on the
bytes. Numba indexes a ``uint8`` array one byte at a time and views it as
``uint64`` only where it is aligned, which a string in a JSON body never
is; these two intrinsics load and store a little-endian word at any byte
offset (one ``mov`` on x86-64 and ARM64). The caller keeps every access
inside the array: a word at ``i`` touches bytes ``i`` to ``i + 7``.
"""

from __future__ import annotations

import sys

from llvmlite import ir
from numba import types
from numba.extending import intrinsic

if sys.byteorder != "little":  # the kernels find the first byte of a word in its low bits
    raise ImportError("correlator's byte kernels need a little-endian machine")

_WORD = ir.IntType(64)


def _bytes(array: types.Type) -> bool:
    """Whether ``array`` is a contiguous ``uint8`` array (else the intrinsic does not type)."""
    return isinstance(array, types.Array) and array.dtype == types.uint8 and array.layout == "C"


@intrinsic
def load8(typingctx, array, index):
    """The eight bytes of a ``uint8`` ``array`` from ``index`` on, as one ``uint64``."""
    if not _bytes(array):
        return None

    def codegen(context, builder, signature, args):
        data = context.make_array(signature.args[0])(context, builder, args[0]).data
        where = builder.bitcast(builder.gep(data, [args[1]]), _WORD.as_pointer())
        return builder.load(where, align=1)

    return types.uint64(array, types.intp), codegen


@intrinsic
def store8(typingctx, array, index, word):
    """Write ``word`` (``uint64``) as bytes ``index`` to ``index + 7`` of ``uint8`` ``array``."""
    if not _bytes(array):
        return None

    def codegen(context, builder, signature, args):
        data = context.make_array(signature.args[0])(context, builder, args[0]).data
        where = builder.bitcast(builder.gep(data, [args[1]]), _WORD.as_pointer())
        builder.store(args[2], where, align=1)
        return context.get_dummy_value()

    return types.void(array, types.intp, types.uint64), codegen
