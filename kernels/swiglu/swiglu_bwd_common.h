// Shared by reader_bwd.cpp, compute_bwd.cpp and writer_bwd.cpp of the SwiGLU gate backward kernel: the
// circular-buffer indices (kernels/swiglu/program_bwd.py defines the CBs at these indices; tests/test_kern_host.py
// checks they agree) on top of the forward's block layout and its x / W / partial-sum CBs (swiglu_common.h):
// a = x W1 and b = x W3 are recomputed block by block exactly as the forward computes them, then the gate's
// derivative is applied per tile.
#pragma once
#include <stdint.h>
#include "swiglu_common.h"

constexpr uint32_t cb_dh = 3;   // the incoming gradient of h = silu(a) * b: one block row (nb pages) at a time
constexpr uint32_t cb_da = 16;  // dL/da, a = x W1
constexpr uint32_t cb_db = 17;  // dL/db, b = x W3
constexpr uint32_t cb_a = 26;   // a of one output subblock after the last K block (fp32, reloaded exactly)
constexpr uint32_t cb_b = 27;   // b of one output subblock after the last K block (fp32, reloaded exactly)
