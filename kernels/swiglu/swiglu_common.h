// CB indices and the work layout shared by the fused SwiGLU reader, compute and writer kernels.
//
// The output [M/32, N/32] tiles are cut into blocks of mb x nb tiles (edge blocks are smaller), numbered
// row-major over the block grid; each core owns a contiguous range of blocks. A block is computed K block by K block:
// the reader brings x[block rows, K block] (mb x kb tiles, index r * kb + i) and W1 / W3[K block, block columns]
// (kb x nb tiles, index i * nb + j) once, and the compute kernel reuses them from L1 for every output subblock of
// the block (one row of up to w tiles: gate in DST[0, w), up in DST[w, 2w)). Between K blocks the fp32 partial sums
// wait in cb_part_gate / cb_part_up (reloaded into DST exactly: unpack-to-dest fp32). So each x tile is read
// ceil(N / (32 nb)) times and each weight tile ceil(M / (32 mb)) times, instead of once per output subblock.
#pragma once
#include <stdint.h>

constexpr uint32_t cb_x = 0;    // activations: one K block of the block's rows (mb x kb)
constexpr uint32_t cb_w1 = 1;   // gate weights: K block x block columns (kb x nb)
constexpr uint32_t cb_w3 = 2;   // up weights: K block x block columns (kb x nb)
constexpr uint32_t cb_out = 16;
constexpr uint32_t cb_part_gate = 24;  // fp32 partial sums of x W1 between K blocks
constexpr uint32_t cb_part_up = 25;    // fp32 partial sums of x W3 between K blocks

struct SwigluBlock {
    uint32_t row0, col0, rows, cols;  // first output tile row / column, and the block's size in tiles
};

// Block `b` of the block grid (blocks_n block columns) of an mt x nt tile grid.
inline SwigluBlock swiglu_block(uint32_t b, uint32_t blocks_n, uint32_t mt, uint32_t nt, uint32_t mb, uint32_t nb) {
    SwigluBlock s;
    s.row0 = (b / blocks_n) * mb;
    s.col0 = (b % blocks_n) * nb;
    s.rows = mt - s.row0 < mb ? mt - s.row0 : mb;
    s.cols = nt - s.col0 < nb ? nt - s.col0 : nb;
    return s;
}
