// RMSNorm backward compute. With r = rsqrt(mean(x^2) + eps), g = dy * gamma (per row, W = true width):
//     dx = r * g - x * coef,   coef = r^3 * sum(x * g) / W,        dgamma = sum over rows of dy * x * r.
// Pass 1 streams the row's width blocks once and row-reduces x^2 and x*g, carrying both partial sums from block
// to block in cb_acc (fp32, unpacked straight to DST); the last block turns them into r and coef (column 0).
// Pass 2 streams the blocks again: dx per tile (r and coef broadcast over columns), and dy * x * r, whose column
// sums go into this core's dgamma partials. A partial tile serves a group of `group` width tiles: the selector
// E_k (ones in row k) turns matmul(E_k, T) into T's column sums placed in row k, so width tile j's sums land in
// row j % group of partial tile j / group and W = 8192 needs 8 partial tiles (32 KB fp32), not 256. The partials
// sit in cb_dg as a FIFO: a group's tile is popped at its first block and pushed back at its last (between two
// blocks of one group it waits in cb_gacc), so every row finds them in order 0, 1, ... At the end the writer
// stores them; program_bwd.py sums the cores' partials.
#include <stdint.h>
#include "api/compute/compute_kernel_hw_startup.h"
#include "api/compute/compute_kernel_api.h"
#include "api/compute/cb_api.h"
#include "api/compute/reg_api.h"
#include "api/compute/pack.h"
#include "api/compute/reconfig_data_format.h"
#include "api/compute/tile_move_copy.h"
#include "api/compute/eltwise_binary.h"
#include "api/compute/reduce.h"
#include "api/compute/bcast.h"
#include "api/compute/matmul.h"
#include "api/compute/eltwise_binary_sfpu.h"
#include "api/compute/eltwise_unary/rsqrt.h"
#include "api/compute/eltwise_unary/fill.h"
#include "api/compute/eltwise_unary/binop_with_scalar.h"
#include "rmsnorm_bwd_common.h"

// Every FPU multiply writes a DST tile not yet written since tile_regs_acquire: ELWMUL adds into DST.

// DST[idst] = dy * gamma for tile i of the current block.
inline void dy_times_gamma(uint32_t i, uint32_t idst) {
    reconfig_data_format(cb_dy, cb_gamma);
    mul_bcast_rows_init(cb_dy, cb_gamma);
    mul_tiles_bcast_rows(cb_dy, cb_gamma, i, i, idst);
}

// Copy tile 0 of an fp32 CB (listed for unpack-to-dest) into DST[0] and pop it.
inline void reload(uint32_t cb) {
    cb_wait_front(cb, 1);
    reconfig_data_format_srca(cb);
    copy_init(cb);
    copy_tile(cb, 0, 0);
    cb_pop_front(cb, 1);
}

inline void pack_one(uint32_t idst, uint32_t cb) {
    cb_reserve_back(cb, 1);
    pack_reconfig_data_format(cb);
    pack_tile(idst, cb);
    cb_push_back(cb, 1);
}

void kernel_main() {
    const uint32_t wt = get_arg_val<uint32_t>(0);
    const uint32_t row_count = get_arg_val<uint32_t>(1);
    const uint32_t inv_w_bits = get_arg_val<uint32_t>(2);  // 1 / (true width) as fp32 bits
    const uint32_t eps_bits = get_arg_val<uint32_t>(3);
    const uint32_t blk = get_arg_val<uint32_t>(4);       // width block, tiles (divides wt)
    const uint32_t group = get_arg_val<uint32_t>(5);     // width tiles per partial tile (a multiple of blk, <= 32)
    const uint32_t n_groups = get_arg_val<uint32_t>(6);  // partial tiles (ceil(wt / group))

    compute_kernel_hw_startup(cb_dy, cb_gamma, cb_xg);
    cb_wait_front(cb_scaler, 1);
    cb_wait_front(cb_sel, group);

    for (uint32_t p = 0; p < n_groups; ++p) {  // zero partials
        tile_regs_acquire();
        fill_tile_init();
        fill_tile(0, 0.0f);
        tile_regs_commit();
        tile_regs_wait();
        pack_one(0, cb_dg);
        tile_regs_release();
    }

    for (uint32_t r = 0; r < row_count; ++r) {
        // Pass 1: sums of x^2 and x * g.
        for (uint32_t w = 0; w < wt; w += blk) {
            cb_wait_front(cb_x, blk);
            cb_wait_front(cb_dy, blk);
            cb_wait_front(cb_gamma, blk);
            cb_reserve_back(cb_x2, blk);
            cb_reserve_back(cb_xg, blk);
            for (uint32_t i = 0; i < blk; ++i) {
                tile_regs_acquire();
                dy_times_gamma(i, 0);
                reconfig_data_format(cb_x, cb_x);
                mul_init(cb_x, cb_x);
                mul_tiles(cb_x, cb_x, i, i, 1);
                copy_init(cb_x);
                copy_tile(cb_x, i, 2);
                mul_binary_tile_init();
                mul_binary_tile(0, 2, 0);
                tile_regs_commit();
                tile_regs_wait();
                pack_reconfig_data_format(cb_x2);
                pack_tile(1, cb_x2);
                pack_reconfig_data_format(cb_xg);
                pack_tile(0, cb_xg);
                tile_regs_release();
            }
            cb_push_back(cb_x2, blk);
            cb_push_back(cb_xg, blk);
            cb_pop_front(cb_x, blk);
            cb_pop_front(cb_dy, blk);
            cb_pop_front(cb_gamma, blk);

            const bool first = w == 0;
            const bool last = w + blk == wt;
            tile_regs_acquire();
            if (!first) {
                cb_wait_front(cb_acc, 2);
                reconfig_data_format_srca(cb_acc);
                copy_init(cb_acc);
                copy_tile(cb_acc, 0, 0);
                copy_tile(cb_acc, 1, 1);
                cb_pop_front(cb_acc, 2);
            }
            cb_wait_front(cb_x2, blk);
            reconfig_data_format(cb_scaler, cb_x2);  // SUM over rows swaps operands: scaler in srcA
            reduce_init<PoolType::SUM, ReduceDim::REDUCE_ROW>(cb_x2, cb_scaler, cb_acc);
            for (uint32_t i = 0; i < blk; ++i) {
                reduce_tile<PoolType::SUM, ReduceDim::REDUCE_ROW>(cb_x2, cb_scaler, i, 0, 0);
            }
            cb_pop_front(cb_x2, blk);
            cb_wait_front(cb_xg, blk);
            reconfig_data_format(cb_scaler, cb_xg);
            reduce_init<PoolType::SUM, ReduceDim::REDUCE_ROW>(cb_xg, cb_scaler, cb_acc);
            for (uint32_t i = 0; i < blk; ++i) {
                reduce_tile<PoolType::SUM, ReduceDim::REDUCE_ROW>(cb_xg, cb_scaler, i, 0, 1);
            }
            reduce_uninit();
            cb_pop_front(cb_xg, blk);
            if (last) {
                binop_with_scalar_tile_init();
                mul_unary_tile(0, inv_w_bits);
                add_unary_tile(0, eps_bits);
                mul_unary_tile(1, inv_w_bits);  // mean(x * g)
                rsqrt_tile_init();
                rsqrt_tile(0);                  // r
                mul_binary_tile_init();
                mul_binary_tile(0, 0, 2);
                mul_binary_tile(2, 0, 2);       // r^3
                mul_binary_tile(1, 2, 1);       // coef
                tile_regs_commit();
                tile_regs_wait();
                pack_one(0, cb_rstd);
                pack_one(1, cb_coef);
            } else {
                cb_reserve_back(cb_acc, 2);
                tile_regs_commit();
                tile_regs_wait();
                pack_reconfig_data_format(cb_acc);
                pack_tile(0, cb_acc);
                pack_tile(1, cb_acc);
                cb_push_back(cb_acc, 2);
            }
            tile_regs_release();
        }

        // Pass 2: dx, and the dgamma partials.
        cb_wait_front(cb_rstd, 1);
        cb_wait_front(cb_coef, 1);
        for (uint32_t w = 0; w < wt; w += blk) {
            cb_wait_front(cb_x, blk);
            cb_wait_front(cb_dy, blk);
            cb_wait_front(cb_gamma, blk);
            cb_reserve_back(cb_dx, blk);
            cb_reserve_back(cb_dgt, blk);
            for (uint32_t i = 0; i < blk; ++i) {
                tile_regs_acquire();
                dy_times_gamma(i, 0);
                tile_regs_commit();
                tile_regs_wait();
                pack_one(0, cb_g);
                tile_regs_release();

                cb_wait_front(cb_g, 1);
                tile_regs_acquire();
                reconfig_data_format(cb_g, cb_rstd);
                mul_bcast_cols_init(cb_g, cb_rstd);
                mul_tiles_bcast_cols(cb_g, cb_rstd, 0, 0, 0);  // r * g
                reconfig_data_format(cb_x, cb_coef);
                mul_bcast_cols_init(cb_x, cb_coef);
                mul_tiles_bcast_cols(cb_x, cb_coef, i, 0, 1);  // x * coef
                sub_binary_tile_init();
                sub_binary_tile(0, 1, 0);                      // dx
                reconfig_data_format(cb_x, cb_rstd);
                mul_bcast_cols_init(cb_x, cb_rstd);
                mul_tiles_bcast_cols(cb_x, cb_rstd, i, 0, 3);  // xhat (ELWMUL adds into DST: a fresh tile)
                reconfig_data_format_srca(cb_dy);
                copy_init(cb_dy);
                copy_tile(cb_dy, i, 2);
                mul_binary_tile_init();
                mul_binary_tile(3, 2, 3);                      // dy * xhat
                tile_regs_commit();
                tile_regs_wait();
                pack_reconfig_data_format(cb_dx);
                pack_tile(0, cb_dx);
                pack_reconfig_data_format(cb_dgt);
                pack_tile(3, cb_dgt);
                tile_regs_release();
                cb_pop_front(cb_g, 1);
            }
            cb_push_back(cb_dx, blk);
            cb_push_back(cb_dgt, blk);
            cb_pop_front(cb_x, blk);
            cb_pop_front(cb_dy, blk);
            cb_pop_front(cb_gamma, blk);

            const uint32_t k0 = w % group;  // row of the partial tile this block's first tile lands in
            const bool group_first = k0 == 0;
            const bool group_last = k0 + blk == group || w + blk == wt;
            tile_regs_acquire();
            reload(group_first ? cb_dg : cb_gacc);
            cb_wait_front(cb_dgt, blk);
            reconfig_data_format(cb_dgt, cb_sel);  // matmul maps in0 -> SrcB, in1 -> SrcA
            matmul_init(cb_sel, cb_dgt);
            for (uint32_t i = 0; i < blk; ++i) {
                matmul_tiles(cb_sel, cb_dgt, k0 + i, i, 0);
            }
            cb_pop_front(cb_dgt, blk);
            tile_regs_commit();
            tile_regs_wait();
            pack_one(0, group_last ? cb_dg : cb_gacc);
            tile_regs_release();
        }
        cb_pop_front(cb_rstd, 1);
        cb_pop_front(cb_coef, 1);
    }

    for (uint32_t p = 0; p < n_groups; ++p) {  // hand the partials to the writer
        tile_regs_acquire();
        reload(cb_dg);
        tile_regs_commit();
        tile_regs_wait();
        pack_one(0, cb_dgamma);
        tile_regs_release();
    }
    cb_pop_front(cb_scaler, 1);
    cb_pop_front(cb_sel, group);
}
