// Shared by reader.cpp, compute.cpp and writer.cpp of the RMSNorm kernel: the circular-buffer indices
// (ops/rmsnorm.py defines the CBs at these indices; tests/test_kern_host.py checks they agree).
#pragma once
#include <stdint.h>

// Inputs (reader -> compute).
constexpr uint32_t cb_x = 0;
constexpr uint32_t cb_res = 1;     // FUSE_RESIDUAL: the residual stream
constexpr uint32_t cb_gamma = 2;   // FUSE_GAMMA: gamma, row 0 of each tile
constexpr uint32_t cb_scaler = 4;  // the reduce scaler (1.0 in row 0 of each face)
// Outputs (compute -> writer).
constexpr uint32_t cb_out = 16;
constexpr uint32_t cb_h_out = 17;  // FUSE_RESIDUAL: h = x + residual
// Compute-only intermediates.
constexpr uint32_t cb_x2 = 24;    // squares of one block
constexpr uint32_t cb_acc = 25;   // partial sum of squares (column 0, fp32, reloaded per block)
constexpr uint32_t cb_rstd = 26;  // rsqrt(mean + eps) (column 0)
constexpr uint32_t cb_h = 27;     // FUSE_RESIDUAL: x + residual of one block, pass 2
constexpr uint32_t cb_norm = 28;  // FUSE_GAMMA: normalized block before gamma
