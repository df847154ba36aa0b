// Emulator version of tt-metal 0.81.1's object NoC API (api/dataflow/noc.h, api/tensor/noc_traits.h), which
// tt-metal's own dataflow kernels use:
//     Noc noc;
//     noc.async_read(tensor_accessor, dfb, bytes, {.page_id = i}, {.offset_bytes = 0});
//     noc.async_write(dfb, tensor_accessor, bytes, {}, {.page_id = i});
// As in tt-metal, noc_traits_t<T> says what an endpoint's extra arguments are and how they turn into an address;
// endpoints provided: TensorAccessor (interleaved DRAM pages) and DataflowBuffer (this core's L1, at the CB's
// write pointer for reads into it and its read pointer for writes out of it). Other endpoints (multicast,
// shards, semaphores) fail to compile, as an unsupported type does in tt-metal. Transfers go through the
// emulator's noc_read/noc_write, so every NoC check applies (reserved pages, page bounds, barriers).
#pragma once
#include "dataflow.h"
#include "dataflow_buffer.h"

enum class NocOptions : uint32_t { DEFAULT = 0, TXN_ID = 1u << 0, POSTED = 1u << 1, CUSTOM_VC = 1u << 2 };
struct NocOptVals {
    uint32_t vc = 0;
    uint32_t trid = 0;
};

template <typename T>
struct noc_traits_t {
    static_assert(sizeof(T) == 0, "emulator: NoC transactions are not supported for this endpoint type");
};

template <typename Args>
struct noc_traits_t<TensorAccessor<Args>> {
    struct src_args_type {
        uint32_t page_id{};
        uint32_t offset_bytes = 0;
    };
    struct dst_args_type {
        uint32_t page_id{};
        uint32_t offset_bytes = 0;
    };
    static uint64_t src_noc_addr(const TensorAccessor<Args>& t, const src_args_type& a) {
        return t.get_noc_addr(a.page_id, a.offset_bytes);
    }
    static uint64_t dst_noc_addr(const TensorAccessor<Args>& t, const dst_args_type& a) {
        return t.get_noc_addr(a.page_id, a.offset_bytes);
    }
};

template <>
struct noc_traits_t<DataflowBuffer> {
    using src_args_type = DataflowBufferArgs;
    using dst_args_type = DataflowBufferArgs;
    static uint32_t src_l1_addr(const DataflowBuffer& b, const src_args_type& a) { return b.get_read_ptr() + a.offset_bytes; }
    static uint32_t dst_l1_addr(const DataflowBuffer& b, const dst_args_type& a) { return b.get_write_ptr() + a.offset_bytes; }
};

class Noc {
public:
    enum class AddressType { NOC, LOCAL_L1 };
    explicit Noc(uint8_t noc_id = noc_index) : noc_id_(noc_id) {}
    uint8_t get_noc_id() const { return noc_id_; }

    // Read from a NoC endpoint (a tensor page) into a local one (a DataflowBuffer's write pointer).
    template <NocOptions opts = NocOptions::DEFAULT, uint32_t max_page_size = NOC_MAX_BURST_SIZE + 1,
              bool enable_noc_tracing = true, typename Src, typename Dst>
    void async_read(const Src& src, const Dst& dst, uint32_t size_bytes,
                    const typename noc_traits_t<Src>::src_args_type& src_args,
                    const typename noc_traits_t<Dst>::dst_args_type& dst_args, const NocOptVals& = {}) const {
        tgemu::noc_read(noc_traits_t<Src>::src_noc_addr(src, src_args), noc_traits_t<Dst>::dst_l1_addr(dst, dst_args),
                        size_bytes);
    }
    // Write from a local endpoint (a DataflowBuffer's read pointer) to a NoC one (a tensor page).
    template <NocOptions opts = NocOptions::DEFAULT, uint32_t max_page_size = NOC_MAX_BURST_SIZE + 1,
              bool enable_noc_tracing = true, typename Src, typename Dst>
    void async_write(const Src& src, const Dst& dst, uint32_t size_bytes,
                     const typename noc_traits_t<Src>::src_args_type& src_args,
                     const typename noc_traits_t<Dst>::dst_args_type& dst_args, const NocOptVals& = {}) const {
        tgemu::noc_write(noc_traits_t<Src>::src_l1_addr(src, src_args), noc_traits_t<Dst>::dst_noc_addr(dst, dst_args),
                         size_bytes);
    }
    template <NocOptions opts = NocOptions::DEFAULT>
    void async_read_barrier(const NocOptVals& = {}) const { tgemu::noc_read_barrier(); }
    template <NocOptions opts = NocOptions::DEFAULT>
    void async_write_barrier(const NocOptVals& = {}) const { tgemu::noc_write_barrier(); }
    template <NocOptions opts = NocOptions::DEFAULT>
    void async_writes_flushed(const NocOptVals& = {}) const { tgemu::noc_write_barrier(); }
    void async_full_barrier() const {
        tgemu::noc_read_barrier();
        tgemu::noc_write_barrier();
    }

private:
    uint8_t noc_id_;
};

// get_local_cb_interface(cb): tt-metal returns the CB's live FIFO registers; kernels read its page size
// (`get_local_cb_interface(cb).fifo_page_size`). The emulator returns a snapshot of the fields it can answer.
struct EmuLocalCBInterface {
    uint32_t fifo_page_size;
    uint32_t fifo_rd_ptr;
    uint32_t fifo_wr_ptr;
};
inline EmuLocalCBInterface get_local_cb_interface(uint32_t cb) {
    return {tgemu::get_tile_size(cb), tgemu::get_read_ptr(cb), tgemu::get_write_ptr(cb)};
}
