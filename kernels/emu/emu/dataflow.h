// Emulator version of the dataflow kernel API (api/dataflow/dataflow_api.h, api/tensor/tensor_accessor.h):
// circular buffers, runtime/compile-time args, interleaved DRAM address generators and NoC reads/writes.
#pragma once
#include "common.h"

constexpr uint8_t noc_index = 0;
#ifndef NOC_MAX_BURST_SIZE
#define NOC_MAX_BURST_SIZE 8192
#endif

FORCE_INLINE void cb_reserve_back(int32_t cb, int32_t n) { tgemu::cb_reserve_back(uint32_t(cb), uint32_t(n)); }
FORCE_INLINE void cb_push_back(int32_t cb, int32_t n) { tgemu::cb_push_back(uint32_t(cb), uint32_t(n)); }
FORCE_INLINE void cb_wait_front(int32_t cb, int32_t n) { tgemu::cb_wait_front(uint32_t(cb), uint32_t(n)); }
FORCE_INLINE void cb_pop_front(int32_t cb, int32_t n) { tgemu::cb_pop_front(uint32_t(cb), uint32_t(n)); }
FORCE_INLINE bool cb_pages_reservable_at_back(int32_t cb, int32_t n) {
    return tgemu::cb_pages_reservable_at_back(uint32_t(cb), uint32_t(n));
}
FORCE_INLINE bool cb_pages_available_at_front(int32_t cb, int32_t n) {
    return tgemu::cb_pages_available_at_front(uint32_t(cb), uint32_t(n));
}
FORCE_INLINE uint32_t get_write_ptr(uint32_t cb) { return tgemu::get_write_ptr(cb); }
FORCE_INLINE uint32_t get_read_ptr(uint32_t cb) { return tgemu::get_read_ptr(cb); }
FORCE_INLINE uint32_t get_tile_size(uint32_t cb) { return tgemu::get_tile_size(cb); }
FORCE_INLINE DataFormat get_dataformat(uint32_t cb) { return DataFormat(tgemu::get_dataformat(cb)); }

// ---- NoC
FORCE_INLINE uint64_t get_noc_addr(uint32_t x, uint32_t y, uint32_t addr, uint8_t noc = noc_index) {
    return tgemu::l1_noc_addr(x, y, addr);
}
FORCE_INLINE uint64_t get_noc_addr(uint32_t addr, uint8_t noc = noc_index) { return tgemu::local_l1_noc_addr(addr); }

template <uint32_t max_page_size = NOC_MAX_BURST_SIZE + 1, bool enable_noc_tracing = true>
inline void noc_async_read(uint64_t src_noc_addr, uint32_t dst_local_l1_addr, uint32_t size, uint8_t noc = noc_index,
                           uint32_t vc = 0) {
    tgemu::noc_read(src_noc_addr, dst_local_l1_addr, size);
}
template <uint32_t max_page_size = NOC_MAX_BURST_SIZE + 1, bool enable_noc_tracing = true, bool posted = false>
inline void noc_async_write(uint32_t src_local_l1_addr, uint64_t dst_noc_addr, uint32_t size, uint8_t noc = noc_index,
                            uint32_t vc = 0) {
    tgemu::noc_write(src_local_l1_addr, dst_noc_addr, size);
}
inline void noc_async_read_barrier(uint8_t noc = noc_index) { tgemu::noc_read_barrier(); }
inline void noc_async_write_barrier(uint8_t noc = noc_index) { tgemu::noc_write_barrier(); }
inline void noc_async_writes_flushed(uint8_t noc = noc_index) { tgemu::noc_write_barrier(); }
inline void noc_async_full_barrier(uint8_t noc = noc_index) {
    tgemu::noc_read_barrier();
    tgemu::noc_write_barrier();
}

// ---- Interleaved DRAM address generators: page `id` of a tensor at `bank_base_address`.
template <bool DRAM>
struct InterleavedAddrGen {
    static constexpr bool is_dram = DRAM;
    uint32_t bank_base_address;
    uint32_t page_size;
    uint64_t get_noc_addr(uint32_t id, uint32_t offset = 0, uint8_t noc = noc_index) const {
        return tgemu::dram_page_noc_addr(bank_base_address, page_size, id, offset);
    }
};
template <bool DRAM, uint32_t tile_hw = 1024>
struct InterleavedAddrGenFast {
    static constexpr bool is_dram = DRAM;
    uint32_t bank_base_address;
    uint32_t page_size;
    DataFormat data_format;
    uint64_t get_noc_addr(uint32_t id, uint32_t offset = 0, uint8_t noc = noc_index) const {
        return tgemu::dram_page_noc_addr(bank_base_address, page_size, id, offset);
    }
};

#include "tensor_accessor.h"

template <typename AddrGen>
FORCE_INLINE uint64_t get_noc_addr(uint32_t id, const AddrGen& s, uint32_t offset = 0, uint8_t noc = noc_index) {
    return s.get_noc_addr(id, offset, noc);
}
template <typename AddrGen>
FORCE_INLINE void noc_async_read_tile(uint32_t id, const AddrGen& s, uint32_t dst_local_l1_addr, uint32_t offset = 0,
                                      uint8_t noc = noc_index) {
    tgemu::noc_read(s.get_noc_addr(id, offset), dst_local_l1_addr, s.page_size - offset);
}
template <typename AddrGen>
FORCE_INLINE void noc_async_read_page(uint32_t id, const AddrGen& s, uint32_t dst_local_l1_addr, uint32_t offset = 0,
                                      uint8_t noc = noc_index) {
    tgemu::noc_read(s.get_noc_addr(id, offset), dst_local_l1_addr, s.page_size - offset);
}
template <typename AddrGen>
FORCE_INLINE void noc_async_write_tile(uint32_t id, const AddrGen& s, uint32_t src_local_l1_addr,
                                       uint8_t noc = noc_index) {
    tgemu::noc_write(src_local_l1_addr, s.get_noc_addr(id, 0), s.page_size);
}
template <typename AddrGen, bool enable_noc_tracing = true>
FORCE_INLINE void noc_async_write_page(uint32_t id, const AddrGen& s, uint32_t src_local_l1_addr, uint32_t size = 0,
                                       uint32_t offset = 0, uint8_t noc = noc_index) {
    tgemu::noc_write(src_local_l1_addr, s.get_noc_addr(id, offset), size ? size : s.page_size);
}
