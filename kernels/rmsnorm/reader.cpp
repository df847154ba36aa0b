// RMSNorm reader: per tile row, streams the row twice in width blocks (pass 1: sum of squares; pass 2:
// normalize), so L1 holds a few blocks rather than the whole row (hidden 8192 = 256 tiles would not fit).
// FUSE_RESIDUAL: also streams the residual (h = x + residual). FUSE_GAMMA: streams gamma in pass 2.
// ROW_RESIDENT: each row once (the compute kernel keeps it for pass 2) and gamma once per core.
// GAMMA_MCAST (ROW_RESIDENT with gamma on more than one core): gamma is read from DRAM once, by core (0, 0), and
// multicast into the same pages of every other core's cb_gamma, with the sender / receiver handshake of ttnn's
// multicast readers (receiver: reserve the pages, clear its sem_gamma_valid, increment the sender's
// sem_gamma_ready, wait for VALID; sender: read, wait until every receiver is ready, multicast the pages to each
// rectangle of receivers, then VALID onto their sem_gamma_valid). Every core reading the same few gamma pages
// would otherwise queue cores x W/32 reads on gamma's banks, which the rest of the row traffic does not share.
#include <stdint.h>
#include "api/dataflow/dataflow_api.h"
#include "rmsnorm_common.h"

// The reduce scaler tile, written straight into L1 by this core: bfloat16 1.0 in row 0 of each 16x16 face, zeros
// elsewhere. Reading it from a DRAM tensor instead puts one page read per core on the same bank, which the others
// do not share (the per-bank DRAM limit of the performance model shows it: ~5 us of an n150's 26 us at
// nano-trickster shapes).
inline void generate_reduce_scaler(uint32_t cb) {
    constexpr uint32_t TILE_WORDS = 32 * 32 / 2;  // two bfloat16 per 32-bit word
    constexpr uint32_t FACE_WORDS = 16 * 16 / 2;
    constexpr uint32_t ONE_ONE = 0x3F803F80;      // two bfloat16 1.0
    cb_reserve_back(cb, 1);
    volatile tt_l1_ptr uint32_t* tile = reinterpret_cast<volatile tt_l1_ptr uint32_t*>(get_write_ptr(cb));
    for (uint32_t i = 0; i < TILE_WORDS; ++i) {
        tile[i] = 0;
    }
    for (uint32_t face = 0; face < 4; ++face) {
        for (uint32_t i = 0; i < 8; ++i) {  // row 0 of the face: 16 values
            tile[face * FACE_WORDS + i] = ONE_ONE;
        }
    }
    cb_push_back(cb, 1);
}

// Read `n` consecutive pages starting at `first` into `cb` and push them.
template <typename Accessor>
inline void read_block(uint32_t cb, const Accessor& acc, uint32_t first, uint32_t n) {
    cb_reserve_back(cb, n);
    uint32_t l1 = get_write_ptr(cb);
    for (uint32_t i = 0; i < n; ++i) {
        noc_async_read_page(first + i, acc, l1);
        l1 += get_tile_size(cb);
    }
    noc_async_read_barrier();
    cb_push_back(cb, n);
}

#ifdef GAMMA_MCAST
constexpr uint32_t sem_gamma_ready = 0;  // on the sender: receivers ready for gamma
constexpr uint32_t sem_gamma_valid = 1;  // on a receiver: gamma has landed

// The multicast address of `l1_addr` on receiver rectangle r (runtime args 11 + 5 r .. 14 + 5 r: its NoC corners).
inline uint64_t rect_addr(uint32_t r, uint32_t l1_addr) {
    const uint32_t a = 11 + 5 * r;
    return get_noc_multicast_addr(get_arg_val<uint32_t>(a), get_arg_val<uint32_t>(a + 1), get_arg_val<uint32_t>(a + 2),
                                  get_arg_val<uint32_t>(a + 3), l1_addr);
}

// Runtime args 7..: is_sender, the sender's NoC x / y, the number of receiver rectangles (1 or 2), then per
// rectangle its NoC corners (start <= end) and its receiver count (the sender, inside the first, excluded).
template <typename Accessor>
inline void receive_or_multicast_gamma(const Accessor& gamma_acc, uint32_t wt) {
    const bool sender = get_arg_val<uint32_t>(7) != 0;
    volatile tt_l1_ptr uint32_t* ready = reinterpret_cast<volatile tt_l1_ptr uint32_t*>(get_semaphore(sem_gamma_ready));
    volatile tt_l1_ptr uint32_t* valid = reinterpret_cast<volatile tt_l1_ptr uint32_t*>(get_semaphore(sem_gamma_valid));
    cb_reserve_back(cb_gamma, wt);
    const uint32_t l1 = get_write_ptr(cb_gamma);
    if (sender) {
        const uint32_t rects = get_arg_val<uint32_t>(10);
        uint32_t receivers = 0;
        for (uint32_t r = 0; r < rects; ++r) receivers += get_arg_val<uint32_t>(15 + 5 * r);
        for (uint32_t w = 0; w < wt; ++w) noc_async_read_page(w, gamma_acc, l1 + w * get_tile_size(cb_gamma));
        noc_async_read_barrier();
        noc_semaphore_wait(ready, receivers);
        noc_semaphore_set(ready, 0);
        for (uint32_t r = 0; r < rects; ++r) {
            noc_async_write_multicast(l1, rect_addr(r, l1), wt * get_tile_size(cb_gamma), get_arg_val<uint32_t>(15 + 5 * r));
        }
        noc_semaphore_set(valid, VALID);
        for (uint32_t r = 0; r < rects; ++r) {
            noc_semaphore_set_multicast(get_semaphore(sem_gamma_valid), rect_addr(r, get_semaphore(sem_gamma_valid)),
                                        get_arg_val<uint32_t>(15 + 5 * r));
        }
        noc_async_write_barrier();  // the pages are the source until the multicast is out
    } else {
        noc_semaphore_set(valid, INVALID);
        noc_semaphore_inc(get_noc_addr(get_arg_val<uint32_t>(8), get_arg_val<uint32_t>(9), get_semaphore(sem_gamma_ready)), 1);
        noc_semaphore_wait(valid, VALID);
    }
    cb_push_back(cb_gamma, wt);
}
#endif

void kernel_main() {
    // Every accessor is always described (absent inputs repeat x's), so offsets do not depend on defines.
    constexpr auto x_args = TensorAccessorArgs<0>();
    constexpr auto res_args = TensorAccessorArgs<x_args.next_compile_time_args_offset()>();
    constexpr auto gamma_args = TensorAccessorArgs<res_args.next_compile_time_args_offset()>();

    const uint32_t x_addr = get_arg_val<uint32_t>(0);
    const uint32_t res_addr = get_arg_val<uint32_t>(1);
    const uint32_t gamma_addr = get_arg_val<uint32_t>(2);
    const uint32_t wt = get_arg_val<uint32_t>(3);  // row width in tiles (a multiple of blk)
    const uint32_t row_start = get_arg_val<uint32_t>(4);
    const uint32_t row_count = get_arg_val<uint32_t>(5);
    const uint32_t blk = get_arg_val<uint32_t>(6);  // width block, tiles (divides wt; the CBs hold 2 blocks)

    const auto x_acc = TensorAccessor(x_args, x_addr, get_tile_size(cb_x));
#ifdef FUSE_RESIDUAL
    const auto res_acc = TensorAccessor(res_args, res_addr, get_tile_size(cb_res));
#endif
#ifdef FUSE_GAMMA
    const auto gamma_acc = TensorAccessor(gamma_args, gamma_addr, get_tile_size(cb_gamma));
#endif

    generate_reduce_scaler(cb_scaler);
#ifdef ROW_RESIDENT
    constexpr uint32_t passes = 1;  // the row stays in L1 for pass 2; gamma stays for every row
#if defined(FUSE_GAMMA) && defined(GAMMA_MCAST)
    receive_or_multicast_gamma(gamma_acc, wt);
#elif defined(FUSE_GAMMA)
    if (row_count > 0) {
        for (uint32_t w = 0; w < wt; w += blk) read_block(cb_gamma, gamma_acc, w, blk);
    }
#endif
#else
    constexpr uint32_t passes = 2;
#endif

    for (uint32_t r = row_start; r < row_start + row_count; ++r) {
        for (uint32_t pass = 0; pass < passes; ++pass) {
            for (uint32_t w = 0; w < wt; w += blk) {
                read_block(cb_x, x_acc, r * wt + w, blk);
#ifdef FUSE_RESIDUAL
                read_block(cb_res, res_acc, r * wt + w, blk);
#endif
#if defined(FUSE_GAMMA) && !defined(ROW_RESIDENT)
                if (pass == 1) {
                    read_block(cb_gamma, gamma_acc, w, blk);
                }
#endif
            }
        }
    }
}
