// Test kernel: one tile op per core, chosen by runtime arg 0, on tile a (CB 0) and tile b (CB 1) -> CB 16.
// Used to check the emulator's tile-op semantics against numpy (tests/test_emu_tileops.py); b doubles as the
// reduce scaler tile.
#include <stdint.h>

#include "api/compute/bcast.h"
#include "api/compute/binary_max_min.h"
#include "api/compute/compute_kernel_api.h"
#include "api/compute/compute_kernel_hw_startup.h"
#include "api/compute/eltwise_unary/exp.h"
#include "api/compute/eltwise_unary/fill.h"
#include "api/compute/eltwise_unary/recip.h"
#include "api/compute/eltwise_unary/rsqrt.h"
#include "api/compute/eltwise_unary/sqrt.h"
#include "api/compute/matmul.h"
#include "api/compute/reduce.h"
#include "api/compute/tile_move_copy.h"
#include "api/compute/transpose.h"

enum TileOp : uint32_t {
    MATMUL, MATMUL_BT, ADD_BCAST_COLS, MUL_BCAST_ROWS, SUB_BCAST_SCALAR, REDUCE_ROW_SUM, REDUCE_ROW_MAX,
    REDUCE_COL_SUM, TRANSPOSE, EXP, RECIP, SQRT, RSQRT, SILU, MAX, MATMUL_TWICE, FILL_AFTER_REDUCE,
    FILL_AFTER_REDUCE_UNINIT, REDUCE_SCALAR_SUM
};

void kernel_main() {
    const uint32_t op = get_arg_val<uint32_t>(0);
    constexpr uint32_t a = 0, b = 1, out = 16;
    compute_kernel_hw_startup(a, b, out);
    cb_wait_front(a, 1);
    cb_wait_front(b, 1);
    tile_regs_acquire();
    switch (op) {
        case MATMUL: matmul_init(a, b); matmul_tiles(a, b, 0, 0, 0); break;
        case MATMUL_TWICE: matmul_init(a, b); matmul_tiles(a, b, 0, 0, 0); matmul_tiles(a, b, 0, 0, 0); break;
        case MATMUL_BT: matmul_init(a, b, 1); matmul_tiles(a, b, 0, 0, 0); break;
        case ADD_BCAST_COLS: add_bcast_cols_init(a, b); add_tiles_bcast_cols(a, b, 0, 0, 0); break;
        case MUL_BCAST_ROWS: mul_bcast_rows_init(a, b); mul_tiles_bcast_rows(a, b, 0, 0, 0); break;
        case SUB_BCAST_SCALAR: sub_bcast_scalar_init(a, b); sub_tiles_bcast_scalar(a, b, 0, 0, 0); break;
        case REDUCE_ROW_SUM:
            reduce_init<PoolType::SUM, ReduceDim::REDUCE_ROW>(a, b, out);
            reduce_tile<PoolType::SUM, ReduceDim::REDUCE_ROW>(a, b, 0, 0, 0);
            reduce_uninit();
            break;
        case REDUCE_ROW_MAX:
            reduce_init<PoolType::MAX, ReduceDim::REDUCE_ROW>(a, b, out);
            reduce_tile<PoolType::MAX, ReduceDim::REDUCE_ROW>(a, b, 0, 0, 0);
            reduce_uninit();
            break;
        case REDUCE_COL_SUM:
            reduce_init<PoolType::SUM, ReduceDim::REDUCE_COL>(a, b, out);
            reduce_tile<PoolType::SUM, ReduceDim::REDUCE_COL>(a, b, 0, 0, 0);
            reduce_uninit();
            break;
        case REDUCE_SCALAR_SUM:
            reduce_init<PoolType::SUM, ReduceDim::REDUCE_SCALAR>(a, b, out);
            reduce_tile<PoolType::SUM, ReduceDim::REDUCE_SCALAR>(a, b, 0, 0, 0);
            reduce_uninit();
            break;
        case FILL_AFTER_REDUCE:  // the packer keeps reduce_init's edge masks: only column 0 survives the pack
        case FILL_AFTER_REDUCE_UNINIT:
            reduce_init<PoolType::SUM, ReduceDim::REDUCE_ROW>(a, b, out);
            reduce_tile<PoolType::SUM, ReduceDim::REDUCE_ROW>(a, b, 0, 0, 0);
            if (op == FILL_AFTER_REDUCE_UNINIT) reduce_uninit();
            fill_tile_init();
            fill_tile(0, 2.0f);
            break;
        case TRANSPOSE: transpose_init(a); transpose_tile(a, 0, 0); break;
        case MAX:
            copy_init(a); copy_tile(a, 0, 0);
            copy_init(b); copy_tile(b, 0, 1);
            binary_max_tile_init(); binary_max_tile(0, 1, 0);
            break;
        default:
            copy_init(a);
            copy_tile(a, 0, 0);
            if (op == EXP) { exp_tile_init(); exp_tile(0); }
            if (op == RECIP) { recip_tile_init(); recip_tile(0); }
            if (op == SQRT) { sqrt_tile_init(); sqrt_tile(0); }
            if (op == RSQRT) { rsqrt_tile_init(); rsqrt_tile(0); }
            if (op == SILU) { silu_tile_init(); silu_tile(0); }
    }
    tile_regs_commit();
    cb_pop_front(a, 1);
    cb_pop_front(b, 1);
    cb_reserve_back(out, 1);
    tile_regs_wait();
    pack_tile(0, out);
    tile_regs_release();
    cb_push_back(out, 1);
}
