// Fused SwiGLU compute: out[m, n] = silu(sum_k x[m,k] W1[k,n]) * (sum_k x[m,k] W3[k,n]), block by block
// (swiglu_common.h). Per K block, every output subblock of the block (one row, up to w tiles) reloads its fp32
// partial sums into DST (after the first K block), accumulates the block's K tiles with matmul_block from the
// x / W tiles already in L1, and either parks the partials again or, after the last K block, applies the gate in
// DST and packs the output. The [M, N] gate / up products never reach DRAM.
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


void kernel_main() {
    const uint32_t kt = get_arg_val<uint32_t>(0);
    const uint32_t mt = get_arg_val<uint32_t>(1);
    const uint32_t nt = get_arg_val<uint32_t>(2);
    const uint32_t block_start = get_arg_val<uint32_t>(3);
    const uint32_t block_count = get_arg_val<uint32_t>(4);
    const uint32_t kb = get_arg_val<uint32_t>(5);
    const uint32_t mb = get_arg_val<uint32_t>(6);
    const uint32_t nb = get_arg_val<uint32_t>(7);
    const uint32_t w = get_arg_val<uint32_t>(8);  // subblock width: 2 * w tiles fit in DST
    const uint32_t blocks_n = get_arg_val<uint32_t>(9);

    compute_kernel_hw_startup<SrcOrder::Reverse>(cb_x, cb_w1, cb_out);

    for (uint32_t b = block_start; b < block_start + block_count; ++b) {
        const SwigluBlock blk = swiglu_block(b, blocks_n, mt, nt, mb, nb);
        for (uint32_t k0 = 0; k0 < kt; k0 += kb) {
            const bool first = k0 == 0;
            const bool last = k0 + kb == kt;
            cb_wait_front(cb_x, mb * kb);
            cb_wait_front(cb_w1, kb * nb);
            cb_wait_front(cb_w3, kb * nb);
            for (uint32_t r = 0; r < blk.rows; ++r) {
                for (uint32_t j0 = 0; j0 < blk.cols; j0 += w) {
                    const uint32_t ws = blk.cols - j0 < w ? blk.cols - j0 : w;
                    tile_regs_acquire();
                    if (!first) {
                        reload(cb_part_gate, 0, ws);
                        reload(cb_part_up, w, ws);
                    }
                    gate_up_subblock(r, j0, ws, w, kb, nb);
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
            cb_pop_front(cb_x, mb * kb);
            cb_pop_front(cb_w1, kb * nb);
            cb_pop_front(cb_w3, kb * nb);
        }
    }
}
