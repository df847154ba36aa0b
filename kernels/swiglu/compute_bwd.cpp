// SwiGLU gate backward compute: for h = silu(a) * b with a = x W1, b = x W3 and the incoming gradient dh,
//     da = dh * b * silu'(a),  silu'(a) = s + silu(a) * (1 - s),  s = sigmoid(a);      db = dh * silu(a).
// a and b are recomputed block by block as the forward computes them (swiglu_common.h: matmul_block subblocks of
// one row of up to w tiles, x / W tiles reused from L1 by the whole block, fp32 partial sums parked in L1 between
// K blocks), so neither ever reaches DRAM. After the last K block a subblock's a and b (2w tiles, all of DST) are
// parked in cb_a / cb_b and brought back one output tile at a time, as the gate's derivative needs four DST tiles:
// 0 = a -> silu(a) -> db, 1 = b -> b * silu'(a) -> da, 2 = scratch / dh, 3 = s -> silu'(a).
// Only da and db go out, for the three matmuls of the backward (dx = da W1^T + db W3^T, dW1 = x^T da,
// dW3 = x^T db), which reduce over other dims (F, M) and run as matmul built-ins.
#include <stdint.h>
#include "api/compute/compute_kernel_hw_startup.h"
#include "api/compute/compute_kernel_api.h"
#include "api/compute/cb_api.h"
#include "api/compute/reg_api.h"
#include "api/compute/pack.h"
#include "api/compute/reconfig_data_format.h"
#include "api/compute/matmul.h"
#include "api/compute/tile_move_copy.h"
#include "api/compute/eltwise_binary_sfpu.h"
#include "api/compute/binary_max_min.h"
#include "api/compute/eltwise_unary/binop_with_scalar.h"
#include "swiglu_bwd_common.h"
#include "swiglu_compute.h"

// da, db of one output tile from its a (cb_a front), b (cb_b front) and dh (page `dh_index` of cb_dh).
inline void gate_bwd_tile(uint32_t dh_index, uint32_t one_bits) {
    tile_regs_acquire();
    reload(cb_a, 0, 1);
    reload(cb_b, 1, 1);
    binary_max_tile_init();
    binary_max_tile(0, 0, 3);  // a copy of a
    sigmoid_tile_init();
    sigmoid_tile(3);           // s
    mul_binary_tile_init();
    mul_binary_tile(0, 3, 0);  // silu(a) = a * s
    binary_max_tile_init();
    binary_max_tile(3, 3, 2);  // s
    binop_with_scalar_tile_init();
    rsub_unary_tile(2, one_bits);  // 1 - s
    mul_binary_tile_init();
    mul_binary_tile(2, 0, 2);  // silu(a) * (1 - s)
    add_binary_tile_init();
    add_binary_tile(2, 3, 3);  // silu'(a)
    mul_binary_tile_init();
    mul_binary_tile(1, 3, 1);  // b * silu'(a)
    reconfig_data_format_srca(cb_dh);
    copy_init(cb_dh);
    copy_tile(cb_dh, dh_index, 2);
    mul_binary_tile_init();
    mul_binary_tile(1, 2, 1);  // da
    mul_binary_tile(0, 2, 0);  // db
    tile_regs_commit();
    tile_regs_wait();
    pack_pages(1, 1, cb_da);
    pack_pages(0, 1, cb_db);
    tile_regs_release();
}

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
    const uint32_t one_bits = get_arg_val<uint32_t>(10);  // 1.0f as fp32 bits

    compute_kernel_hw_startup<SrcOrder::Reverse>(cb_x, cb_w1, cb_da);

    for (uint32_t b = block_start; b < block_start + block_count; ++b) {
        const SwigluBlock blk = swiglu_block(b / blocks_n, b % blocks_n, mt, nt, mb, nb);
        for (uint32_t k0 = 0; k0 < kt; k0 += kb) {
            const bool first = k0 == 0;
            const bool last = k0 + kb == kt;
            wait_k_block(mb, kb, nb);
            for (uint32_t r = 0; r < blk.rows; ++r) {
                if (last) {
                    cb_wait_front(cb_dh, nb);
                }
                for (uint32_t j0 = 0; j0 < blk.cols; j0 += w) {
                    const uint32_t ws = blk.cols - j0 < w ? blk.cols - j0 : w;
                    accumulate_subblock(first, r, j0, ws, w, kb, nb);
                    tile_regs_commit();
                    tile_regs_wait();
                    pack_pages(0, ws, last ? cb_a : cb_part_gate);
                    pack_pages(w, ws, last ? cb_b : cb_part_up);
                    tile_regs_release();
                    for (uint32_t j = 0; last && j < ws; ++j) {
                        gate_bwd_tile(j0 + j, one_bits);
                    }
                }
                if (last) {
                    cb_pop_front(cb_dh, nb);
                }
            }
            pop_k_block(mb, kb, nb);
        }
    }
}
