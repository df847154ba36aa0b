// SwiGLU gate backward compute: for h = silu(a) * b with a = x W1, b = x W3 and the incoming gradient dh,
//     da = dh * b * silu'(a),  silu'(a) = s + silu(a) * (1 - s),  s = sigmoid(a);      db = dh * silu(a).
// a and b are recomputed per tile (both matmuls accumulate in DST over all of K, as in the forward), so neither
// ever leaves the core; only da and db go out, for the three matmuls of the backward (dx = da W1^T + db W3^T,
// dW1 = x^T da, dW3 = x^T db), which reduce over other dims (F, M) and run as matmul built-ins.
// DST (fp32, 4 tiles): 0 = a -> silu(a) -> db, 1 = b -> b * silu'(a) -> da, 2 = scratch / dh, 3 = s -> silu'(a).
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

void kernel_main() {
    const uint32_t kt = get_arg_val<uint32_t>(0);
    const uint32_t tile_count = get_arg_val<uint32_t>(1);
    const uint32_t k_blk = get_arg_val<uint32_t>(2);
    const uint32_t one_bits = get_arg_val<uint32_t>(3);  // 1.0f as fp32 bits

    compute_kernel_hw_startup<SrcOrder::Reverse>(cb_x, cb_w1, cb_da);

    for (uint32_t t = 0; t < tile_count; ++t) {
        tile_regs_acquire();
        for (uint32_t k0 = 0; k0 < kt; k0 += k_blk) {
            cb_wait_front(cb_x, k_blk);
            cb_wait_front(cb_w1, k_blk);
            cb_wait_front(cb_w3, k_blk);
            reconfig_data_format(cb_w1, cb_x);  // matmul maps in0 -> SrcB, in1 -> SrcA
            matmul_init(cb_x, cb_w1);
            for (uint32_t i = 0; i < k_blk; ++i) {
                matmul_tiles(cb_x, cb_w1, i, i, 0);
            }
            reconfig_data_format(cb_w3, cb_x);
            matmul_init(cb_x, cb_w3);
            for (uint32_t i = 0; i < k_blk; ++i) {
                matmul_tiles(cb_x, cb_w3, i, i, 1);
            }
            cb_pop_front(cb_x, k_blk);
            cb_pop_front(cb_w1, k_blk);
            cb_pop_front(cb_w3, k_blk);
        }
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

        cb_wait_front(cb_dh, 1);
        reconfig_data_format_srca(cb_dh);
        copy_init(cb_dh);
        copy_tile(cb_dh, 0, 2);
        cb_pop_front(cb_dh, 1);
        mul_binary_tile_init();
        mul_binary_tile(1, 2, 1);  // da
        mul_binary_tile(0, 2, 0);  // db
        tile_regs_commit();
        tile_regs_wait();
        cb_reserve_back(cb_da, 1);
        cb_reserve_back(cb_db, 1);
        pack_reconfig_data_format(cb_da);
        pack_tile(1, cb_da);
        pack_reconfig_data_format(cb_db);
        pack_tile(0, cb_db);
        cb_push_back(cb_da, 1);
        cb_push_back(cb_db, 1);
        tile_regs_release();
    }
}
