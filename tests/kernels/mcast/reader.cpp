// Test reader for the emulator's semaphores and multicast (tests/test_emu_multicast.py): the sender core reads
// tiles of x from DRAM and multicasts each one into the same CB page of every receiver, with tt-metal's
// sender/receiver handshake (as ttnn's multicast matmul readers do):
//   receiver: reserve its CB page, clear its "valid" semaphore, tell the sender it is ready (noc_semaphore_inc),
//             wait until the sender marks the page valid, push it;
//   sender:   read the tile into its own reserved page, wait until every receiver is ready, multicast the tile,
//             then multicast "valid" onto the receivers' semaphore, push its own page.
// Runtime args: x address, tiles, is_sender, sender NOC x / y, rectangle NOC x0 y0 x1 y1, num_dests,
// dst_skew (bytes added to the multicast destination: planted out-of-CB write), skip_valid (planted hang),
// loopback (use the *_loopback_src variant, num_dests counting the sender), receivers (cores that signal ready:
// kept apart from num_dests so a wrong num_dests reaches the multicast).
#include <stdint.h>
#include "api/dataflow/dataflow_api.h"

constexpr uint32_t cb_tile = 0;
constexpr uint32_t sem_ready = 0;  // on the sender: how many receivers are ready
constexpr uint32_t sem_valid = 1;  // on every core: the receiver's page holds the tile (the sender's copy: source)

void kernel_main() {
    constexpr auto x_args = TensorAccessorArgs<0>();
    const uint32_t x_addr = get_arg_val<uint32_t>(0);
    const uint32_t tiles = get_arg_val<uint32_t>(1);
    const bool is_sender = get_arg_val<uint32_t>(2) != 0;
    const uint32_t sender_x = get_arg_val<uint32_t>(3);
    const uint32_t sender_y = get_arg_val<uint32_t>(4);
    const uint32_t x0 = get_arg_val<uint32_t>(5);
    const uint32_t y0 = get_arg_val<uint32_t>(6);
    const uint32_t x1 = get_arg_val<uint32_t>(7);
    const uint32_t y1 = get_arg_val<uint32_t>(8);
    const uint32_t num_dests = get_arg_val<uint32_t>(9);
    const uint32_t dst_skew = get_arg_val<uint32_t>(10);
    const bool skip_valid = get_arg_val<uint32_t>(11) != 0;
    const bool loopback = get_arg_val<uint32_t>(12) != 0;
    const uint32_t receivers = get_arg_val<uint32_t>(13);

    const uint32_t tile_bytes = get_tile_size(cb_tile);
    const auto x_acc = TensorAccessor(x_args, x_addr, tile_bytes);
    volatile tt_l1_ptr uint32_t* ready = reinterpret_cast<volatile tt_l1_ptr uint32_t*>(get_semaphore(sem_ready));
    volatile tt_l1_ptr uint32_t* valid = reinterpret_cast<volatile tt_l1_ptr uint32_t*>(get_semaphore(sem_valid));

    for (uint32_t t = 0; t < tiles; ++t) {
        cb_reserve_back(cb_tile, 1);
        const uint32_t page = get_write_ptr(cb_tile);
        if (is_sender) {
            noc_async_read_page(t, x_acc, page);
            noc_async_read_barrier();
            noc_semaphore_wait(ready, receivers);
            noc_semaphore_set(ready, 0);
            const uint64_t data_dst = get_noc_multicast_addr(x0, y0, x1, y1, page + dst_skew);
            if (loopback) {
                noc_async_write_multicast_loopback_src(page, data_dst, tile_bytes, num_dests);
            } else {
                noc_async_write_multicast(page, data_dst, tile_bytes, num_dests);
            }
            if (!skip_valid) {
                noc_semaphore_set(valid, VALID);
                const uint64_t valid_dst = get_noc_multicast_addr(x0, y0, x1, y1, get_semaphore(sem_valid));
                if (loopback) {
                    noc_semaphore_set_multicast_loopback_src(get_semaphore(sem_valid), valid_dst, num_dests);
                } else {
                    noc_semaphore_set_multicast(get_semaphore(sem_valid), valid_dst, num_dests);
                }
            }
            noc_async_write_barrier();
        } else {
            noc_semaphore_set(valid, INVALID);
            noc_semaphore_inc(get_noc_addr(sender_x, sender_y, get_semaphore(sem_ready)), 1);
            noc_semaphore_wait(valid, VALID);
        }
        cb_push_back(cb_tile, 1);
    }
}
