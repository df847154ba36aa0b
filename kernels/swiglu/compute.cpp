// Fused SwiGLU compute: out[m, n] = silu(sum_k x[m,k] W1[k,n]) * (sum_k x[m,k] W3[k,n]).
// Output tiles come in groups of g <= n_blk neighbours in one row (see reader.cpp). For a group, both matmuls
// accumulate in DST across all K blocks -- gates in DST[0, g), up projections in DST[n_blk, n_blk + g) -- then the
// gate is applied in DST, so neither intermediate ever leaves the core.
#include <stdint.h>
#include "api/compute/compute_kernel_hw_startup.h"
#include "api/compute/compute_kernel_api.h"
#include "api/compute/cb_api.h"
#include "api/compute/reg_api.h"
#include "api/compute/pack.h"
#include "api/compute/reconfig_data_format.h"
#include "api/compute/matmul.h"
#include "api/compute/eltwise_binary_sfpu.h"
#include "swiglu_common.h"

void kernel_main() {
    const uint32_t kt = get_arg_val<uint32_t>(0);
    const uint32_t nt = get_arg_val<uint32_t>(1);
    const uint32_t tile_start = get_arg_val<uint32_t>(2);
    const uint32_t tile_count = get_arg_val<uint32_t>(3);
    const uint32_t k_blk = get_arg_val<uint32_t>(4);
    const uint32_t n_blk = get_arg_val<uint32_t>(5);

    compute_kernel_hw_startup<SrcOrder::Reverse>(cb_x, cb_w1, cb_out);

    const uint32_t tile_end = tile_start + tile_count;
    for (uint32_t t = tile_start; t < tile_end;) {
        const uint32_t n0 = t % nt;
        uint32_t g = nt - n0;
        if (g > n_blk) g = n_blk;
        if (g > tile_end - t) g = tile_end - t;

        tile_regs_acquire();
        for (uint32_t k0 = 0; k0 < kt; k0 += k_blk) {
            cb_wait_front(cb_x, k_blk);
            cb_wait_front(cb_w1, k_blk * n_blk);
            cb_wait_front(cb_w3, k_blk * n_blk);
            reconfig_data_format(cb_w1, cb_x);  // matmul maps in0 -> SrcB, in1 -> SrcA
            matmul_init(cb_x, cb_w1);
            for (uint32_t i = 0; i < k_blk; ++i) {
                for (uint32_t j = 0; j < g; ++j) {
                    matmul_tiles(cb_x, cb_w1, i, i * n_blk + j, j);
                }
            }
            reconfig_data_format(cb_w3, cb_x);  // matmul maps in0 -> SrcB, in1 -> SrcA
            matmul_init(cb_x, cb_w3);
            for (uint32_t i = 0; i < k_blk; ++i) {
                for (uint32_t j = 0; j < g; ++j) {
                    matmul_tiles(cb_x, cb_w3, i, i * n_blk + j, n_blk + j);
                }
            }
            cb_pop_front(cb_x, k_blk);
            cb_pop_front(cb_w1, k_blk * n_blk);
            cb_pop_front(cb_w3, k_blk * n_blk);
        }
        silu_tile_init();
        for (uint32_t j = 0; j < g; ++j) {
            silu_tile(j);
        }
        mul_binary_tile_init();
        for (uint32_t j = 0; j < g; ++j) {
            mul_binary_tile(j, n_blk + j, j);
        }
        tile_regs_commit();
        tile_regs_wait();
        pack_reconfig_data_format(cb_out);
        for (uint32_t j = 0; j < g; ++j) {  // one page at a time: g varies, the output CB must not straddle
            cb_reserve_back(cb_out, 1);
            pack_tile(j, cb_out);
            cb_push_back(cb_out, 1);
        }
        tile_regs_release();
        t += g;
    }
}
