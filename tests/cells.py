"""The cells the engine tests are parametrised by (a helper module of the test-suite, not a test
module): numgru.GRU with ``reset_after`` either way, numgru.RNN with either nonlinearity."""

import numgru

# (cell, reset_after) as tests/reference.py names them; reset_after concerns the GRU only
CELLS = [("gru", True), ("gru", False), ("rnn_tanh", True), ("rnn_relu", True)]
CELL_IDS = ["gru", "gru_cho", "rnn_tanh", "rnn_relu"]
CELL_PARAMS = dict(argnames="cell, reset_after", argvalues=CELLS, ids=CELL_IDS)


def make_net(cell, reset_after, input_size, hidden_size, num_layers=1, **kw):
    """numgru.GRU or numgru.RNN for ``cell``; ``kw`` as both constructors take them."""
    if cell == "gru":
        return numgru.GRU(input_size, hidden_size, num_layers, reset_after=reset_after, **kw)
    return numgru.RNN(input_size, hidden_size, num_layers, nonlinearity=cell[len("rnn_"):], **kw)
