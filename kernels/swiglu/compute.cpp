// Fused SwiGLU compute: out[m, n] = silu(sum_k x[m,k] W1[k,n]) * (sum_k x[m,k] W3[k,n]), block by block
// (swiglu_common.h; a round without a block of this core only drops the group's W blocks). Per K block, every
// output subblock of the block (one row, up to w tiles) reloads its fp32 partial sums into DST (after the first K
// block), accumulates the block's K tiles with matmul_block from the x / W tiles already in L1, and either parks
// the partials again or, after the last K block, applies the gate in DST and packs the output. The [M, N] gate /
// up products never reach DRAM.
#include <stdint.h>
#include "api/compute/compute_kernel_hw_startup.h"
#include "api/compute/compute_kernel_api.h"
#include "api/compute/cb_api.h"
#include "api/compute/reg_api.h"
#include "api/compute/pack.h"
#include "api/compute/reconfig_data_format.h"
#include "api/compute/tile_move_copy.h"
#include "api/compute/matmul.h"
#include "api/compute/eltwise_binary_sfpu.h"
#include "swiglu_common.h"
#include "swiglu_compute.h"

// One output block: every K block of it, reusing each pushed x / W block for all its subblocks.
inline void compute_block(const SwigluBlock& blk, uint32_t kt, uint32_t kb, uint32_t mb, uint32_t nb, uint32_t w) {
    for (uint32_t k0 = 0; k0 < kt; k0 += kb) {
        const bool first = k0 == 0;
        const bool last = k0 + kb == kt;
        wait_k_block(mb, kb, nb);
        for (uint32_t r = 0; r < blk.rows; ++r) {
            for (uint32_t j0 = 0; j0 < blk.cols; j0 += w) {
                const uint32_t ws = blk.cols - j0 < w ? blk.cols - j0 : w;
                accumulate_subblock(first, r, j0, ws, w, kb, nb);
                if (last) {
                    silu_tile_init();
                    for (uint32_t j = 0; j < ws; ++j) {
                        silu_tile(j);
                    }
                    mul_binary_tile_init();
                    for (uint32_t j = 0; j < ws; ++j) {
                        mul_binary_tile(j, w + j, j);
                    }
                }
                tile_regs_commit();
                tile_regs_wait();
                if (last) {
                    pack_pages(0, ws, cb_out);
                } else {
                    pack_pages(0, ws, cb_part_gate);
                    pack_pages(w, ws, cb_part_up);
                }
                tile_regs_release();
            }
        }
        pop_k_block(mb, kb, nb);
    }
}

// A round without a block of this core: the group's W blocks arrive all the same (multicast into every member's
// pages); drop them.
inline void drop_w_blocks(uint32_t kt, uint32_t kb, uint32_t nb) {
    for (uint32_t k0 = 0; k0 < kt; k0 += kb) {
        cb_wait_front(cb_w1, kb * nb);
        cb_wait_front(cb_w3, kb * nb);
        cb_pop_front(cb_w1, kb * nb);
        cb_pop_front(cb_w3, kb * nb);
    }
}

void kernel_main() {
    const SwigluLayout lay = swiglu_layout();
    const uint32_t kt = get_arg_val<uint32_t>(8);
    const uint32_t mt = get_arg_val<uint32_t>(9);
    const uint32_t nt = get_arg_val<uint32_t>(10);
    const uint32_t kb = get_arg_val<uint32_t>(11);
    const uint32_t mb = get_arg_val<uint32_t>(12);
    const uint32_t nb = get_arg_val<uint32_t>(13);
    const uint32_t w = get_arg_val<uint32_t>(14);  // subblock width: 2 * w tiles fit in DST

    compute_kernel_hw_startup<SrcOrder::Reverse>(cb_x, cb_w1, cb_out);

    for (uint32_t j = lay.column; j < lay.blocks_n; j += lay.columns) {
        for (uint32_t round = 0; round < lay.rounds(); ++round) {
            if (!lay.round_used(round)) {
                continue;
            }
            const uint32_t i = lay.block_row(round);
            if (i < lay.blocks_m) {
                compute_block(swiglu_block(i, j, mt, nt, mb, nb), kt, kb, mb, nb, w);
            } else {
                drop_w_blocks(kt, kb, nb);
            }
        }
    }
}
