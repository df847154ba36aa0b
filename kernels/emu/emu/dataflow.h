// Emulator version of the dataflow kernel API (api/dataflow/dataflow_api.h, api/tensor/tensor_accessor.h):
// circular buffers, runtime/compile-time args, interleaved DRAM address generators and NoC reads/writes.
#pragma once
#include "common.h"

constexpr uint8_t noc_index = 0;
// Virtual channels (tt-metal 0.81.1 dataflow_api_common.h, Wormhole values); accepted and ignored.
#ifndef NOC_UNICAST_WRITE_VC
#define NOC_UNICAST_WRITE_VC 1
#define NOC_MULTICAST_WRITE_VC 4
#endif
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

// ---- Semaphores and multicast (tt-metal 0.81.1 dataflow_api.h signatures). NoC coordinates are NOC0 coordinates
// of worker cores (runtime-arg placeholders NocX / NocY in the program description); see API.md "Semaphores and
// multicast" for what is modelled and checked.
// The semaphore values tt-metal's handshakes use (hostdevcommon/common_values.hpp, included by dataflow_api.h).
constexpr static uint32_t INVALID = 0;
constexpr static uint32_t VALID = 1;
enum class ProgrammableCoreType { TENSIX = 0, ACTIVE_ETH = 1, IDLE_ETH = 2 };
template <ProgrammableCoreType type = ProgrammableCoreType::TENSIX>
FORCE_INLINE uintptr_t get_semaphore(uint32_t semaphore_id) {
    static_assert(type == ProgrammableCoreType::TENSIX, "emulator: only Tensix semaphores are modelled");
    return tgemu::semaphore_addr(semaphore_id);
}
FORCE_INLINE uint64_t get_noc_multicast_addr(uint32_t noc_x_start, uint32_t noc_y_start, uint32_t noc_x_end,
                                             uint32_t noc_y_end, uint32_t addr, uint8_t noc = noc_index) {
    return tgemu::mcast_noc_addr(noc_x_start, noc_y_start, noc_x_end, noc_y_end, addr);  // noc: at the write
}
FORCE_INLINE void noc_semaphore_wait(volatile tt_l1_ptr uint32_t* sem_addr, uint32_t val) {
    tgemu::sem_wait(uintptr_t(sem_addr), val, false);
}
FORCE_INLINE void noc_semaphore_wait_min(volatile tt_l1_ptr uint32_t* sem_addr, uint32_t val) {
    tgemu::sem_wait(uintptr_t(sem_addr), val, true);
}
FORCE_INLINE void noc_semaphore_set(volatile tt_l1_ptr uint32_t* sem_addr, uint32_t val) {
    tgemu::sem_set_local(uintptr_t(sem_addr), val);
}
template <bool posted = false>
FORCE_INLINE void noc_semaphore_inc(uint64_t addr, uint32_t incr, uint8_t noc_id = noc_index, uint8_t vc = NOC_UNICAST_WRITE_VC) {
    tgemu::sem_inc(addr, incr);
}
template <bool posted = false>
FORCE_INLINE void noc_semaphore_inc_multicast(uint64_t addr, uint32_t incr, uint32_t num_dests,
                                              uint8_t noc_id = noc_index, uint8_t vc = NOC_MULTICAST_WRITE_VC) {
    tgemu::sem_inc_mcast(addr, incr, num_dests, noc_id);
}
inline void noc_semaphore_set_remote(uint32_t src_local_l1_addr, uint64_t dst_noc_addr, uint8_t noc = noc_index) {
    tgemu::noc_write(src_local_l1_addr, dst_noc_addr, 4);
}
template <uint32_t max_page_size = NOC_MAX_BURST_SIZE + 1>
inline void noc_async_write_multicast(uint32_t src_local_l1_addr, uint64_t dst_noc_addr_multicast, uint32_t size,
                                      uint32_t num_dests, bool linked = false, uint8_t noc = noc_index,
                                      uint8_t vc = NOC_MULTICAST_WRITE_VC) {
    tgemu::noc_write_mcast(src_local_l1_addr, dst_noc_addr_multicast, size, num_dests, false, noc,
                           "noc_async_write_multicast");
}
template <bool enable_noc_tracing = true>
FORCE_INLINE void noc_async_write_multicast_one_packet(uint32_t src_local_l1_addr, uint64_t dst_noc_addr_multicast,
                                                       uint32_t size, uint32_t num_dests, bool linked = false,
                                                       uint8_t noc = noc_index) {
    if (size > NOC_MAX_BURST_SIZE) tgemu::fail("noc_async_write_multicast_one_packet: size above NOC_MAX_BURST_SIZE");
    tgemu::noc_write_mcast(src_local_l1_addr, dst_noc_addr_multicast, size, num_dests, false, noc,
                           "noc_async_write_multicast_one_packet");
}
inline void noc_async_write_multicast_loopback_src(uint32_t src_local_l1_addr, uint64_t dst_noc_addr_multicast,
                                                   uint32_t size, uint32_t num_dests, bool linked = false,
                                                   uint8_t noc = noc_index) {
    tgemu::noc_write_mcast(src_local_l1_addr, dst_noc_addr_multicast, size, num_dests, true, noc,
                           "noc_async_write_multicast_loopback_src");
}
inline void noc_semaphore_set_multicast(uint32_t src_local_l1_addr, uint64_t dst_noc_addr_multicast,
                                        uint32_t num_dests, bool linked = false, uint8_t noc = noc_index,
                                        uint8_t vc = NOC_MULTICAST_WRITE_VC) {
    tgemu::noc_write_mcast(src_local_l1_addr, dst_noc_addr_multicast, 4, num_dests, false, noc,
                           "noc_semaphore_set_multicast");
}
inline void noc_semaphore_set_multicast_loopback_src(uint32_t src_local_l1_addr, uint64_t dst_noc_addr_multicast,
                                                     uint32_t num_dests, bool linked = false,
                                                     uint8_t noc = noc_index) {
    tgemu::noc_write_mcast(src_local_l1_addr, dst_noc_addr_multicast, 4, num_dests, true, noc,
                           "noc_semaphore_set_multicast_loopback_src");
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
