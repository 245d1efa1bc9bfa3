// rnnkit's public C++ header: shape letters, layouts and the entry points of
// the native core. No Python here; src/core binds it.
//
// Shape letters, used in every pointer comment:
//   T  time steps            N  batch size          C  input features
//   H  hidden units          G  gates per unit: 1 (RNN, IndRNN), 4 (LSTM: i,f,g,o), 3 (GRU: r,z,n)
// All arrays are C-contiguous, time-major: x is [T,N,C]. Weights use PyTorch's
// layout and gate order (w_ih [G*H,C], w_hh [G*H,H], IndRNN w_hh [H]).
// The cache arrays and the lengths/direction rule are specified in docs/cells.md.
#pragma once

#include "rnnkit/cpu.h"
