// RMSNorm compute: y = x * rsqrt(mean(x^2) + eps) [* gamma], per tile row, in two passes over width blocks.
// Pass 1 squares each block and row-reduces it, carrying the partial sum from block to block in cb_acc (copied
// back into DST before the next block's reduce accumulates onto it). The last block turns the sum into
// rstd = rsqrt(sum / W + eps) in fp32 DST. Pass 2 multiplies every tile by rstd (broadcast over columns) and by
// gamma (row 0 broadcast down the rows).
// FUSE_RESIDUAL: the normalized value is h = x + residual; h is also an output (the new residual stream).
// ROW_RESIDENT (the builder's choice when a whole row fits the L1 budget): the reader sends each row once and its
// tiles stay in cb_x (cb_res) until pass 2 is done, indexed by their offset in the row, and gamma is read once per
// core and stays in cb_gamma; otherwise both passes stream the row from DRAM.
// Unpack / math / pack configuration is set once per loop over a block, not per tile: nothing between two tiles
// of a loop changes it (the residual path packs to two CBs, so it reprograms the packer per tile).
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
#include "api/compute/eltwise_binary_sfpu.h"
#include "api/compute/eltwise_unary/rsqrt.h"
#include "api/compute/eltwise_unary/binop_with_scalar.h"
#include "rmsnorm_common.h"

void kernel_main() {
    const uint32_t wt = get_arg_val<uint32_t>(0);
    const uint32_t row_count = get_arg_val<uint32_t>(1);
    const uint32_t inv_w_bits = get_arg_val<uint32_t>(2);  // 1 / (true width) as fp32 bits
    const uint32_t eps_bits = get_arg_val<uint32_t>(3);
    const uint32_t blk = get_arg_val<uint32_t>(4);  // width block, tiles (divides wt)
#ifdef ROW_RESIDENT
    constexpr bool resident = true;
#else
    constexpr bool resident = false;
#endif

    compute_kernel_hw_startup(cb_x, cb_x, cb_x2);
    cb_wait_front(cb_scaler, 1);

    for (uint32_t r = 0; r < row_count; ++r) {
        // Pass 1: sum of squares.
        for (uint32_t w = 0; w < wt; w += blk) {
            const uint32_t off = resident ? w : 0;  // first tile of this block among the pages waited for
            cb_wait_front(cb_x, off + blk);
#ifdef FUSE_RESIDUAL
            cb_wait_front(cb_res, off + blk);
            cb_reserve_back(cb_h_out, blk);
#endif
            cb_reserve_back(cb_x2, blk);
#ifdef FUSE_RESIDUAL
            reconfig_data_format(cb_x, cb_res);
            add_init(cb_x, cb_res);
            mul_binary_tile_init();
#else
            reconfig_data_format(cb_x, cb_x);
            mul_init(cb_x, cb_x);
            pack_reconfig_data_format(cb_x2);
#endif
            for (uint32_t i = 0; i < blk; ++i) {
                tile_regs_acquire();
#ifdef FUSE_RESIDUAL
                add_tiles(cb_x, cb_res, off + i, off + i, 0);
                mul_binary_tile(0, 0, 1);
                tile_regs_commit();
                tile_regs_wait();
                pack_reconfig_data_format(cb_h_out);
                pack_tile(0, cb_h_out);
                pack_reconfig_data_format(cb_x2);
                pack_tile(1, cb_x2);
#else
                mul_tiles(cb_x, cb_x, off + i, off + i, 1);
                tile_regs_commit();
                tile_regs_wait();
                pack_tile(1, cb_x2);
#endif
                tile_regs_release();
            }
            cb_push_back(cb_x2, blk);
            if (!resident) cb_pop_front(cb_x, blk);
#ifdef FUSE_RESIDUAL
            cb_push_back(cb_h_out, blk);
            if (!resident) cb_pop_front(cb_res, blk);
#endif

            const bool first = w == 0;
            const bool last = w + blk == wt;
            tile_regs_acquire();
            if (!first) {
                cb_wait_front(cb_acc, 1);
                reconfig_data_format_srca(cb_acc);
                copy_init(cb_acc);
                copy_tile(cb_acc, 0, 0);
                cb_pop_front(cb_acc, 1);
            }
            cb_wait_front(cb_x2, blk);
            reconfig_data_format(cb_scaler, cb_x2);  // SUM over rows swaps operands: scaler in srcA
            reduce_init<PoolType::SUM, ReduceDim::REDUCE_ROW>(cb_x2, cb_scaler, cb_acc);
            for (uint32_t i = 0; i < blk; ++i) {
                reduce_tile<PoolType::SUM, ReduceDim::REDUCE_ROW>(cb_x2, cb_scaler, i, 0, 0);
            }
            reduce_uninit();
            cb_pop_front(cb_x2, blk);
            const uint32_t dest = last ? cb_rstd : cb_acc;
            if (last) {
                binop_with_scalar_tile_init();
                mul_unary_tile(0, inv_w_bits);
                add_unary_tile(0, eps_bits);
                rsqrt_tile_init();
                rsqrt_tile(0);
            }
            cb_reserve_back(dest, 1);
            tile_regs_commit();
            tile_regs_wait();
            pack_reconfig_data_format(dest);
            pack_tile(0, dest);
            tile_regs_release();
            cb_push_back(dest, 1);
        }

        // Pass 2: normalize.
        cb_wait_front(cb_rstd, 1);
        for (uint32_t w = 0; w < wt; w += blk) {
            const uint32_t off = resident ? w : 0;
            cb_wait_front(cb_x, off + blk);
            uint32_t src = cb_x;
            uint32_t src_off = off;
#ifdef FUSE_RESIDUAL
            cb_wait_front(cb_res, off + blk);
            cb_reserve_back(cb_h, blk);
            reconfig_data_format(cb_x, cb_res);
            add_init(cb_x, cb_res);
            pack_reconfig_data_format(cb_h);
            for (uint32_t i = 0; i < blk; ++i) {
                tile_regs_acquire();
                add_tiles(cb_x, cb_res, off + i, off + i, 0);
                tile_regs_commit();
                tile_regs_wait();
                pack_tile(0, cb_h);
                tile_regs_release();
            }
            cb_push_back(cb_h, blk);
            if (!resident) cb_pop_front(cb_res, blk);
            cb_wait_front(cb_h, blk);
            src = cb_h;
            src_off = 0;
#endif
#ifdef FUSE_GAMMA
            const uint32_t normed = cb_norm;
#else
            const uint32_t normed = cb_out;
#endif
            cb_reserve_back(normed, blk);
            reconfig_data_format(src, cb_rstd);
            mul_bcast_cols_init(src, cb_rstd);
            pack_reconfig_data_format(normed);
            for (uint32_t i = 0; i < blk; ++i) {
                tile_regs_acquire();
                mul_tiles_bcast_cols(src, cb_rstd, src_off + i, 0, 0);
                tile_regs_commit();
                tile_regs_wait();
                pack_tile(0, normed);
                tile_regs_release();
            }
            cb_push_back(normed, blk);
            if (!resident) cb_pop_front(cb_x, blk);
#ifdef FUSE_RESIDUAL
            cb_pop_front(cb_h, blk);
#endif
#ifdef FUSE_GAMMA
            cb_wait_front(cb_gamma, off + blk);
            cb_wait_front(cb_norm, blk);
            cb_reserve_back(cb_out, blk);
            reconfig_data_format(cb_norm, cb_gamma);
            mul_bcast_rows_init(cb_norm, cb_gamma);
            pack_reconfig_data_format(cb_out);
            for (uint32_t i = 0; i < blk; ++i) {
                tile_regs_acquire();
                mul_tiles_bcast_rows(cb_norm, cb_gamma, i, off + i, 0);
                tile_regs_commit();
                tile_regs_wait();
                pack_tile(0, cb_out);
                tile_regs_release();
            }
            cb_push_back(cb_out, blk);
            cb_pop_front(cb_norm, blk);
            if (!resident) cb_pop_front(cb_gamma, blk);
#endif
        }
        if (resident) {
            cb_pop_front(cb_x, wt);
#ifdef FUSE_RESIDUAL
            cb_pop_front(cb_res, wt);
#endif
        }
        cb_pop_front(cb_rstd, 1);
    }
#ifdef FUSE_GAMMA
    if (resident && row_count > 0) cb_pop_front(cb_gamma, wt);
#endif
    cb_pop_front(cb_scaler, 1);
}
