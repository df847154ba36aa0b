// Emulator TensorAccessor for interleaved DRAM tensors. Compile-time args as tt-metal 0.81.1 lays them out for an
// interleaved tensor: [ArgConfig flags (IsDram = 2), aligned page size]; sharded tensors are not supported.
#pragma once
#include "common.h"

template <std::size_t CTA_OFFSET, std::size_t CRTA_OFFSET = 0>
struct TensorAccessorArgs {
    static constexpr uint32_t args_config = get_compile_time_arg_val(CTA_OFFSET);
    static constexpr bool is_sharded = (args_config & 1) != 0;
    static constexpr bool is_dram = (args_config & 2) != 0;
    static_assert(!is_sharded, "emulator: sharded TensorAccessor is not supported");
    static_assert((args_config & (1u << 7)) == 0, "emulator: runtime page size is not supported");
    static constexpr uint32_t AlignedPageSize = get_compile_time_arg_val(CTA_OFFSET + 1);
    static constexpr uint32_t num_compile_time_args() { return 2; }
    static constexpr uint32_t next_compile_time_args_offset() { return CTA_OFFSET + 2; }
    static constexpr uint32_t num_common_runtime_args() { return 0; }
    static constexpr uint32_t next_common_runtime_args_offset() { return CRTA_OFFSET; }
    constexpr TensorAccessorArgs() = default;
};

template <typename Args>
struct TensorAccessor {
    uint32_t bank_base_address;
    uint32_t page_size;
    TensorAccessor(const Args&, uint32_t addr, uint32_t page_size_in = 0)
        : bank_base_address(addr), page_size(page_size_in ? page_size_in : Args::AlignedPageSize) {}
    uint64_t get_noc_addr(uint32_t page_id, uint32_t offset = 0, uint8_t noc = 0) const {
        return tgemu::dram_page_noc_addr(bank_base_address, page_size, page_id, offset);
    }
    uint32_t get_aligned_page_size() const { return page_size; }
};
template <typename Args>
TensorAccessor(const Args&, uint32_t) -> TensorAccessor<Args>;
template <typename Args>
TensorAccessor(const Args&, uint32_t, uint32_t) -> TensorAccessor<Args>;
