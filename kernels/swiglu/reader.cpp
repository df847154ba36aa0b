// Fused SwiGLU reader: for each block of this core (swiglu_common.h) and each K block, x[block rows, K block] into
// cb_x, and W1 / W3[K block, block columns] into cb_w1 / cb_w3: read from DRAM by the group's sender and multicast
// to the other members, with the sender/receiver handshake of ttnn's multicast matmul readers:
//   member: reserve the W pages, clear its sem_w_valid, increment the sender's sem_w_ready, wait for sem_w_valid;
//   sender: read the W tiles into its reserved pages, wait until every member is ready, multicast the tiles into
//           the same pages of the members (one NoC operation each for W1 and W3), then multicast VALID onto their
//           sem_w_valid (the same NoC and VC: it lands after the data).
// Edge blocks still push whole mb x kb / kb x nb CB blocks (the unused pages are left unread), so every CB block
// stays aligned and the members' CB pointers stay in step.
#include <stdint.h>
#include "api/dataflow/dataflow_api.h"
#include "swiglu_common.h"

void kernel_main() {
    constexpr auto x_args = TensorAccessorArgs<0>();
    constexpr auto w1_args = TensorAccessorArgs<x_args.next_compile_time_args_offset()>();
    constexpr auto w3_args = TensorAccessorArgs<w1_args.next_compile_time_args_offset()>();

    const SwigluLayout lay = swiglu_layout();
    const uint32_t x_addr = get_arg_val<uint32_t>(8);
    const uint32_t w1_addr = get_arg_val<uint32_t>(9);
    const uint32_t w3_addr = get_arg_val<uint32_t>(10);
    const uint32_t kt = get_arg_val<uint32_t>(11);  // K in tiles (a multiple of kb)
    const uint32_t mt = get_arg_val<uint32_t>(12);
    const uint32_t nt = get_arg_val<uint32_t>(13);
    const uint32_t kb = get_arg_val<uint32_t>(14);
    const uint32_t mb = get_arg_val<uint32_t>(15);
    const uint32_t nb = get_arg_val<uint32_t>(16);
    const uint32_t sender_x = get_arg_val<uint32_t>(17);  // NoC coordinates of the group's sender
    const uint32_t sender_y = get_arg_val<uint32_t>(18);
    // NoC rectangle of the group (the sender included), start <= end. NOC1 routes the other way round, so a reader
    // placed on NOC1 names it end -> start, as tt-metal's multicast program factories swap the corners for NOC1.
    const bool noc1 = noc_index == 1;
    const uint32_t mcast_x0 = get_arg_val<uint32_t>(noc1 ? 21 : 19);
    const uint32_t mcast_y0 = get_arg_val<uint32_t>(noc1 ? 22 : 20);
    const uint32_t mcast_x1 = get_arg_val<uint32_t>(noc1 ? 19 : 21);
    const uint32_t mcast_y1 = get_arg_val<uint32_t>(noc1 ? 20 : 22);

    const auto x_acc = TensorAccessor(x_args, x_addr, get_tile_size(cb_x));
    const auto w1_acc = TensorAccessor(w1_args, w1_addr, get_tile_size(cb_w1));
    const auto w3_acc = TensorAccessor(w3_args, w3_addr, get_tile_size(cb_w3));
    const uint32_t x_tile = get_tile_size(cb_x);
    const uint32_t w_tile = get_tile_size(cb_w1);
    const bool sender = lay.member == 0;
    const uint32_t receivers = lay.group_size - 1;
    volatile tt_l1_ptr uint32_t* w_ready = reinterpret_cast<volatile tt_l1_ptr uint32_t*>(get_semaphore(sem_w_ready));
    volatile tt_l1_ptr uint32_t* w_valid = reinterpret_cast<volatile tt_l1_ptr uint32_t*>(get_semaphore(sem_w_valid));
    const uint64_t sender_ready = get_noc_addr(sender_x, sender_y, get_semaphore(sem_w_ready));

    for (uint32_t j = lay.column; j < lay.blocks_n; j += lay.columns) {
        for (uint32_t round = 0; round < lay.rounds(); ++round) {
            if (!lay.round_used(round)) {
                continue;
            }
            const uint32_t i = lay.block_row(round);
            const bool has_block = i < lay.blocks_m;
            const SwigluBlock blk = swiglu_block(has_block ? i : 0, j, mt, nt, mb, nb);
            // W pages that hold tiles: the last K row of the block ends after `cols` tiles.
            const uint32_t w_bytes = ((kb - 1) * nb + blk.cols) * w_tile;
            for (uint32_t k0 = 0; k0 < kt; k0 += kb) {
                if (has_block) {
                    cb_reserve_back(cb_x, mb * kb);
                    const uint32_t lx = get_write_ptr(cb_x);
                    for (uint32_t r = 0; r < blk.rows; ++r) {
                        for (uint32_t t = 0; t < kb; ++t) {
                            noc_async_read_page((blk.row0 + r) * kt + k0 + t, x_acc, lx + (r * kb + t) * x_tile);
                        }
                    }
                }
                cb_reserve_back(cb_w1, kb * nb);
                cb_reserve_back(cb_w3, kb * nb);
                const uint32_t l1 = get_write_ptr(cb_w1);
                const uint32_t l3 = get_write_ptr(cb_w3);
                if (sender) {
                    for (uint32_t t = 0; t < kb; ++t) {
                        for (uint32_t c = 0; c < blk.cols; ++c) {
                            const uint32_t page = (k0 + t) * nt + blk.col0 + c;
                            noc_async_read_page(page, w1_acc, l1 + (t * nb + c) * w_tile);
                            noc_async_read_page(page, w3_acc, l3 + (t * nb + c) * w_tile);
                        }
                    }
                    noc_async_read_barrier();
                    if (receivers > 0) {
                        noc_semaphore_wait(w_ready, receivers);
                        noc_semaphore_set(w_ready, 0);
                        noc_async_write_multicast(
                            l1, get_noc_multicast_addr(mcast_x0, mcast_y0, mcast_x1, mcast_y1, l1), w_bytes, receivers);
                        noc_async_write_multicast(
                            l3, get_noc_multicast_addr(mcast_x0, mcast_y0, mcast_x1, mcast_y1, l3), w_bytes, receivers);
                        noc_semaphore_set(w_valid, VALID);
                        noc_semaphore_set_multicast(
                            get_semaphore(sem_w_valid),
                            get_noc_multicast_addr(mcast_x0, mcast_y0, mcast_x1, mcast_y1, get_semaphore(sem_w_valid)),
                            receivers);
                        noc_async_write_barrier();  // the pages are the source until the multicast is out
                    }
                } else {
                    noc_semaphore_set(w_valid, INVALID);
                    noc_semaphore_inc(sender_ready, 1);
                    noc_async_read_barrier();  // this member's x
                    noc_semaphore_wait(w_valid, VALID);
                }
                if (has_block) {
                    cb_push_back(cb_x, mb * kb);
                }
                cb_push_back(cb_w1, kb * nb);
                cb_push_back(cb_w3, kb * nb);
            }
        }
    }
}
