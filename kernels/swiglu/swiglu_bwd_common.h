// Shared by reader_bwd.cpp, compute_bwd.cpp and writer_bwd.cpp of the SwiGLU gate backward kernel: the
// circular-buffer indices (kernels/swiglu/program_bwd.py defines the CBs at these indices; tests/test_kern_host.py
// checks they agree).
#pragma once
#include <stdint.h>

constexpr uint32_t cb_x = 0;    // activations, one K block of one row of tiles
constexpr uint32_t cb_w1 = 1;   // gate weights, K block of one column of tiles
constexpr uint32_t cb_w3 = 2;   // up weights, K block of one column of tiles
constexpr uint32_t cb_dh = 3;   // the incoming gradient of the gate output h = silu(a) * b, one tile
constexpr uint32_t cb_da = 16;  // dL/da, a = x W1
constexpr uint32_t cb_db = 17;  // dL/db, b = x W3
