// Compute-side pieces shared by the SwiGLU forward (compute.cpp) and gate backward (compute_bwd.cpp) kernels:
// both compute a = x W1 and b = x W3 the same way (swiglu_common.h), so they round identically.
#pragma once
#include <stdint.h>
#include "api/compute/cb_api.h"
#include "api/compute/reg_api.h"
#include "api/compute/pack.h"
#include "api/compute/reconfig_data_format.h"
#include "api/compute/tile_move_copy.h"
#include "api/compute/matmul.h"
#include "swiglu_common.h"

// Pack DST[first, first + n) into `cb`, one page at a time (subblocks at block edges are narrower).
inline void pack_pages(uint32_t first, uint32_t n, uint32_t cb) {
    pack_reconfig_data_format(cb);
    for (uint32_t j = 0; j < n; ++j) {
        cb_reserve_back(cb, 1);
        pack_tile(first + j, cb);
        cb_push_back(cb, 1);
    }
}

// Reload n fp32 tiles from `cb` into DST[first, first + n) (exact: the CB is unpacked straight to DST).
inline void reload(uint32_t cb, uint32_t first, uint32_t n) {
    reconfig_data_format_srca(cb);
    copy_init(cb);
    for (uint32_t j = 0; j < n; ++j) {
        cb_wait_front(cb, 1);
        copy_tile(cb, 0, first + j);
        cb_pop_front(cb, 1);
    }
}

// One K block's contribution to output subblock (row r, columns j0 .. j0 + ws) of a block: x W1 accumulated into
// DST[0, ws), x W3 into DST[w, w + ws), from the block's x (mb x kb) and W (kb x nb) tiles waiting in L1.
inline void gate_up_subblock(uint32_t r, uint32_t j0, uint32_t ws, uint32_t w, uint32_t kb, uint32_t nb) {
    reconfig_data_format(cb_w1, cb_x);  // matmul maps in0 -> SrcB, in1 -> SrcA
    matmul_block_init(cb_x, cb_w1, 0, ws, 1, kb);
    for (uint32_t i = 0; i < kb; ++i) {
        matmul_block(cb_x, cb_w1, r * kb + i, i * nb + j0, 0, 0, ws, 1, kb);
    }
    reconfig_data_format(cb_w3, cb_x);
    matmul_block_init(cb_x, cb_w3, 0, ws, 1, kb);
    for (uint32_t i = 0; i < kb; ++i) {
        matmul_block(cb_x, cb_w3, r * kb + i, i * nb + j0, w, 0, ws, 1, kb);
    }
}

// The x (mb x kb) and W1 / W3 (kb x nb) tiles of one K block of a block, waited for / released together.
inline void wait_k_block(uint32_t mb, uint32_t kb, uint32_t nb) {
    cb_wait_front(cb_x, mb * kb);
    cb_wait_front(cb_w1, kb * nb);
    cb_wait_front(cb_w3, kb * nb);
}
inline void pop_k_block(uint32_t mb, uint32_t kb, uint32_t nb) {
    cb_pop_front(cb_x, mb * kb);
    cb_pop_front(cb_w1, kb * nb);
    cb_pop_front(cb_w3, kb * nb);
}

// Acquire DST and bring subblock (r, j0 .. j0 + ws) of x W1 / x W3 up to this K block: the partial sums of the
// earlier K blocks (none when `first`) reloaded, then this block's products added. The caller applies what
// follows in DST, commits, packs and releases.
inline void accumulate_subblock(bool first, uint32_t r, uint32_t j0, uint32_t ws, uint32_t w, uint32_t kb, uint32_t nb) {
    tile_regs_acquire();
    if (!first) {
        reload(cb_part_gate, 0, ws);
        reload(cb_part_up, w, ws);
    }
    gate_up_subblock(r, j0, ws, w, kb, nb);
}
