// Test kernel: out = a + b (or a * b with -DELTWISE_MUL), tile by tile.
// Planted bugs for the emulator tests (one define at a time):
//   BUG_MISSING_POP   never pops CB 1          BUG_WAIT_TOO_MANY  waits for 3 pages of a 2-page CB
//   BUG_DST_INDEX     computes into DST[8]     BUG_PACK_OUTSIDE   packs before tile_regs_wait()
//   BUG_WRONG_INIT    mul_tiles after add_init BUG_SFPU_NO_INIT   exp_tile without exp_tile_init
//   BUG_PUSH_UNPACKED pushes the output page without packing into it
//   BUG_SPIN          loops forever (calling the API, so the emulator's timeout can stop it)
//   BUG_WAIT_BLOCKS_OF_2 waits for and pops CB 1 two pages at a time (wraps a 3-page CB)
#include <stdint.h>

#include "api/compute/compute_kernel_hw_startup.h"
#include "api/compute/eltwise_binary.h"
#include "api/compute/tile_move_copy.h"
#ifdef BUG_SFPU_NO_INIT
#include "api/compute/eltwise_unary/exp.h"
#endif
#ifdef DEBUG_PRINT
#include "api/debug/dprint.h"
#endif

void kernel_main() {
    const uint32_t n = get_arg_val<uint32_t>(0);
#ifdef BUG_SPIN
    while (get_arg_val<uint32_t>(0) == n) {
    }
#endif
    constexpr uint32_t cb_a = 0, cb_b = 1, cb_out = 16;
    compute_kernel_hw_startup(cb_a, cb_b, cb_out);
#ifdef ELTWISE_MUL
    mul_init(cb_a, cb_b);
#else
    add_init(cb_a, cb_b);
#endif
    for (uint32_t i = 0; i < n; i++) {
        cb_wait_front(cb_a, 1);
#ifdef BUG_WAIT_TOO_MANY
        cb_wait_front(cb_b, 3);
#elif defined(BUG_WAIT_BLOCKS_OF_2)
        cb_wait_front(cb_b, 2);
#else
        cb_wait_front(cb_b, 1);
#endif
        tile_regs_acquire();
#ifdef BUG_DST_INDEX
        add_tiles(cb_a, cb_b, 0, 0, 8);
#endif
#if defined(BUG_WRONG_INIT) && !defined(ELTWISE_MUL)
        mul_tiles(cb_a, cb_b, 0, 0, 0);
#endif
#ifdef ELTWISE_MUL
        mul_tiles(cb_a, cb_b, 0, 0, 0);
#else
        add_tiles(cb_a, cb_b, 0, 0, 0);
#endif
#ifdef BUG_SFPU_NO_INIT
        exp_tile(0);
#endif
        tile_regs_commit();
#ifdef DEBUG_PRINT
        DPRINT("tile {} of {}\n", i, n);
#endif
        cb_pop_front(cb_a, 1);
#if defined(BUG_WAIT_BLOCKS_OF_2)
        cb_pop_front(cb_b, 2);
#elif !defined(BUG_MISSING_POP)
        cb_pop_front(cb_b, 1);
#endif
        cb_reserve_back(cb_out, 1);
#ifdef BUG_PACK_OUTSIDE
        pack_tile(0, cb_out);
#endif
        tile_regs_wait();
#ifndef BUG_PUSH_UNPACKED
        pack_tile(0, cb_out);
#endif
        tile_regs_release();
        cb_push_back(cb_out, 1);
    }
}
