// Shared by reader.cpp, compute.cpp and writer.cpp of the fused SwiGLU kernel: the circular-buffer indices
// (ops/swiglu.py defines the CBs at these indices; tests/test_kern_host.py checks they agree).
#pragma once
#include <stdint.h>

constexpr uint32_t cb_x = 0;    // activations, one K block of one row of tiles
constexpr uint32_t cb_w1 = 1;   // gate weights, K block x N subblock
constexpr uint32_t cb_w3 = 2;   // up weights, K block x N subblock
constexpr uint32_t cb_out = 16;
