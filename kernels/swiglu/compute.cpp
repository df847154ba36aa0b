// Fused SwiGLU compute: out[m, n] = silu(sum_k x[m,k] W1[k,n]) * (sum_k x[m,k] W3[k,n]).
// Both matmuls of one output tile accumulate in DST (gate in tile 0, up in tile 1) across all K blocks, then
// the gate is applied in DST, so neither intermediate ever leaves the core.
#include <stdint.h>
#include "api/compute/compute_kernel_hw_startup.h"
#include "api/compute/compute_kernel_api.h"
#include "api/compute/cb_api.h"
#include "api/compute/reg_api.h"
#include "api/compute/pack.h"
#include "api/compute/reconfig_data_format.h"
#include "api/compute/matmul.h"
#include "api/compute/eltwise_binary_sfpu.h"

constexpr uint32_t cb_x = 0;
constexpr uint32_t cb_w1 = 1;
constexpr uint32_t cb_w3 = 2;
constexpr uint32_t cb_out = 16;

void kernel_main() {
    const uint32_t kt = get_arg_val<uint32_t>(0);
    const uint32_t tile_count = get_arg_val<uint32_t>(1);
    const uint32_t k_blk = get_arg_val<uint32_t>(2);

    compute_kernel_hw_startup<SrcOrder::Reverse>(cb_x, cb_w1, cb_out);

    for (uint32_t t = 0; t < tile_count; ++t) {
        tile_regs_acquire();
        for (uint32_t k0 = 0; k0 < kt; k0 += k_blk) {
            cb_wait_front(cb_x, k_blk);
            cb_wait_front(cb_w1, k_blk);
            cb_wait_front(cb_w3, k_blk);
            reconfig_data_format(cb_x, cb_w1);
            matmul_init(cb_x, cb_w1);
            for (uint32_t i = 0; i < k_blk; ++i) {
                matmul_tiles(cb_x, cb_w1, i, i, 0);
            }
            reconfig_data_format(cb_x, cb_w3);
            matmul_init(cb_x, cb_w3);
            for (uint32_t i = 0; i < k_blk; ++i) {
                matmul_tiles(cb_x, cb_w3, i, i, 1);
            }
            cb_pop_front(cb_x, k_blk);
            cb_pop_front(cb_w1, k_blk);
            cb_pop_front(cb_w3, k_blk);
        }
        silu_tile_init();
        silu_tile(0);
        mul_binary_tile_init();
        mul_binary_tile(0, 1, 0);
        cb_reserve_back(cb_out, 1);
        tile_regs_commit();
        tile_regs_wait();
        pack_reconfig_data_format(cb_out);
        pack_tile(0, cb_out);
        tile_regs_release();
        cb_push_back(cb_out, 1);
    }
}
