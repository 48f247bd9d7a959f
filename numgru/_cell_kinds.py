"""The cell kinds the general recurrent kernels branch on (``kind`` of
:func:`numgru._cpu_norm.norm_layer_forward` and its CUDA twin), one name per integer.

The kernels compare ``kind`` against these module-level integers; Numba reads a module-level
integer as a compile-time constant, so ``kind == KIND_GRU`` compiles to the same comparison as
``kind == 0`` did. The cells (:mod:`numgru._cells`) say which kind they are with the same names.
"""

KIND_GRU = 0             # GRU in the reset_after form: gates r, z, n (N = 3 gate blocks)
KIND_RNN_TANH = 1        # vanilla RNN, h' = tanh(a) (N = 1)
KIND_RNN_RELU = 2        # vanilla RNN, h' = relu(a) (N = 1)
