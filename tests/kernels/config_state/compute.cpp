// Test kernel for the emulator's configuration-state checks (tests/test_emu_config_state.py): one tile of
// a (CB 0, bfloat16) and b (CB 1, float32) -> CB 16 (float32). Without a BUG_* define it configures the hardware
// correctly and computes out = a + b; each BUG_* define plants one configuration mistake a card would not report.
#include <stdint.h>

#include "api/compute/compute_kernel_api.h"
#include "api/compute/compute_kernel_hw_startup.h"
#include "api/compute/eltwise_binary.h"
#include "api/compute/pack.h"
#include "api/compute/reconfig_data_format.h"
#include "api/compute/reduce.h"
#include "api/compute/tile_move_copy.h"

void kernel_main() {
    constexpr uint32_t cb_a = 0, cb_b = 1, cb_out = 16;
#if defined(BUG_NO_HW_STARTUP)
    copy_init(cb_a);
#elif defined(BUG_PACK_NOT_RECONFIGURED)
    compute_kernel_hw_startup(cb_a, cb_b, cb_a);  // packer left in bfloat16
#else
    compute_kernel_hw_startup(cb_a, cb_a, cb_out);  // SrcB left in bfloat16: the add must reconfigure it
#endif
    cb_wait_front(cb_a, 1);
    cb_wait_front(cb_b, 1);
    tile_regs_acquire();
#if defined(BUG_MISSING_RECONFIG)
    add_init(cb_a, cb_b);
    add_tiles(cb_a, cb_b, 0, 0, 0);
#elif defined(BUG_STALE_OLD_OPERAND)
    reconfig_data_format_srcb(cb_b, cb_b);  // claims SrcB already holds CB 1's format: the LLK skips the reconfig
    add_init(cb_a, cb_b);
    add_tiles(cb_a, cb_b, 0, 0, 0);
#elif defined(BUG_REDUCE_MAX_SCALER)
    reconfig_data_format(cb_b, cb_a);
    reduce_init<PoolType::MAX, ReduceDim::REDUCE_ROW>(cb_b, cb_a, cb_out);  // the scaler tile is a, not 1.0
    reduce_tile<PoolType::MAX, ReduceDim::REDUCE_ROW>(cb_b, cb_a, 0, 0, 0);
    reduce_uninit();
#elif defined(BUG_REDUCE_MIN)
    reconfig_data_format(cb_b, cb_a);
    reduce_init<PoolType::MIN, ReduceDim::REDUCE_ROW>(cb_b, cb_a, cb_out);
    reduce_tile<PoolType::MIN, ReduceDim::REDUCE_ROW>(cb_b, cb_a, 0, 0, 0);
    reduce_uninit();
#elif defined(BUG_COPY_INIT_OTHER_PATH)
    reconfig_data_format_srca(cb_b);
    copy_init(cb_a);  // loads the SrcA path; CB 1 is unpacked straight to DST
    copy_tile(cb_b, 0, 0);
#elif defined(COPY_B)
    reconfig_data_format_srca(cb_b);
    copy_init(cb_b);  // the path copy_init(cb_b) loads: straight to DST when CB 1 is unpack_to_dest_fp32, else SrcA
    copy_tile(cb_b, 0, 0);
#else
    reconfig_data_format(cb_a, cb_b);
    add_init(cb_a, cb_b);
    add_tiles(cb_a, cb_b, 0, 0, 0);
#endif
    tile_regs_commit();
    cb_pop_front(cb_a, 1);
    cb_pop_front(cb_b, 1);
    cb_reserve_back(cb_out, 1);
    tile_regs_wait();
#if defined(BUG_PACK_L1_ACC)
    pack_reconfig_data_format(cb_out);
    pack_reconfig_l1_acc(1);
#elif !defined(BUG_PACK_NOT_RECONFIGURED)
    pack_reconfig_data_format(cb_out);
#endif
    pack_tile(0, cb_out);
    tile_regs_release();
    cb_push_back(cb_out, 1);
}
