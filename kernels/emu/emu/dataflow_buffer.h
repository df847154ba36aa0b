// Emulator version of tt-metal 0.81.1's DataflowBuffer (api/dataflow/dataflow_buffer.h), the object form of a
// circular buffer that tt-metal's own kernels use on both kernel kinds: `DataflowBuffer dfb(cb); dfb.wait_front(n)`.
// On Wormhole/Blackhole it is a thin wrapper of the CB index, so each member forwards to the emulator's CB calls,
// with the same checks as cb_reserve_back/cb_push_back/cb_wait_front/cb_pop_front. Only the tt-1xx (WH/BH) surface
// is provided: no Quasar tile counters, binding tokens or scoped locks.
#pragma once
#include "common.h"

// Arguments of a NoC transfer that has a DataflowBuffer as its L1 end (api/dataflow/noc.h).
struct DataflowBufferArgs {
    uint32_t offset_bytes{};
};

class DataflowBuffer {
public:
    DataflowBuffer(uint16_t logical_dfb_id) : id_(logical_dfb_id) { tgemu::check_cb(id_, "DataflowBuffer"); }
    uint16_t get_id() const { return id_; }
    uint32_t get_entry_size() const { return tgemu::get_tile_size(id_); }
    uint32_t get_tile_size() const { return tgemu::get_tile_size(id_); }
    uint16_t get_producer_share() const { return 1; }  // tt-1xx: every op moves one contiguous entry
    uint16_t get_consumer_share() const { return 1; }
    void reserve_back(uint16_t n) { tgemu::cb_reserve_back(id_, n); }
    void push_back(uint16_t n) { tgemu::cb_push_back(id_, n); }
    void wait_front(uint16_t n) { tgemu::cb_wait_front(id_, n); }
    void pop_front(uint16_t n) { tgemu::cb_pop_front(id_, n); }
    uint32_t get_write_ptr() const { return tgemu::get_write_ptr(id_); }
    uint32_t get_read_ptr() const { return tgemu::get_read_ptr(id_); }
    void finish() {}  // a deprecated no-op on WH/BH

private:
    uint16_t id_;
};
