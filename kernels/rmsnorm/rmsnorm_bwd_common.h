// Shared by reader_bwd.cpp, compute_bwd.cpp and writer_bwd.cpp of the RMSNorm backward kernel: the
// circular-buffer indices (kernels/rmsnorm/program_bwd.py defines the CBs at these indices; tests/test_kern_host.py
// checks they agree).
#pragma once
#include <stdint.h>

// Inputs (reader -> compute).
constexpr uint32_t cb_x = 0;
constexpr uint32_t cb_gamma = 2;   // gamma, row 0 of each tile
constexpr uint32_t cb_dy = 3;
constexpr uint32_t cb_scaler = 4;  // the reduce scaler (1.0 in row 0 of each face)
constexpr uint32_t cb_sel = 5;     // row selectors E_k (ones in row k): E_k @ T puts T's column sums in row k
// Outputs (compute -> writer).
constexpr uint32_t cb_dx = 16;
constexpr uint32_t cb_dgamma = 17;  // this core's dgamma partial tiles, written once at the end
// Compute-only intermediates.
constexpr uint32_t cb_x2 = 24;    // x^2 of one block (fp32)
constexpr uint32_t cb_acc = 25;   // partial sums of x^2 and x*g (2 tiles, column 0, fp32, reloaded per block)
constexpr uint32_t cb_rstd = 26;  // r = rsqrt(mean(x^2) + eps) (column 0)
constexpr uint32_t cb_coef = 27;  // r^3 * mean(x * g) (column 0)
constexpr uint32_t cb_xg = 28;    // x * g of one block (g = dy * gamma)
constexpr uint32_t cb_g = 29;     // g of one tile, pass 2
constexpr uint32_t cb_dgt = 30;   // dy * xhat of one block, pass 2
constexpr uint32_t cb_dg = 31;    // dgamma partials of this core, one tile per width group (a FIFO rotated per row)
constexpr uint32_t cb_gacc = 23;  // the open group's partial between two blocks of that group
