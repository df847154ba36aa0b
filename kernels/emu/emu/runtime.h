// tilegraph kernel-API emulator: the interface between the kernel-side headers (api/...) and the emulator
// runtime (libtgemu.so). Kernel translation units only see these declarations; all state (cores, circular
// buffers, DST registers, DRAM) lives in the runtime, which runs every (core, kernel) as one host thread.
#pragma once
#include <cstdint>

namespace tgemu {

// Data-format codes: the values of tt-metal's DataFormat enum.
enum FormatCode : uint32_t { FMT_FLOAT32 = 0, FMT_FLOAT16_B = 5, FMT_BFP8_B = 6 };
enum BinaryOp : uint32_t { OP_ADD = 0, OP_SUB = 1, OP_MUL = 2, OP_MAX = 3, OP_MIN = 4, OP_DIV = 5, OP_RSUB = 6 };
enum BcastKind : uint32_t { BC_NONE = 0, BC_COL = 1, BC_ROW = 2, BC_SCALAR = 3 };
enum PoolKind : uint32_t { POOL_SUM = 0, POOL_AVG = 1, POOL_MAX = 2, POOL_MIN = 3 };
enum ReduceKind : uint32_t { RED_ROW = 0, RED_COL = 1, RED_SCALAR = 2 };
enum UnaryOp : uint32_t {
    U_EXP, U_RECIP, U_RSQRT, U_SQRT, U_SIGMOID, U_SILU, U_TANH, U_NEG, U_SQUARE, U_ABS, U_LOG, U_FILL,
    U_ADD_SCALAR, U_SUB_SCALAR, U_MUL_SCALAR, U_DIV_SCALAR, U_RSUB_SCALAR, U_RELU, U_GELU, U_EXP2, U_POWER,
    U_EXP_APPROX  // exp_tile<approx=true>: exp's APPROX is its template argument, not the kernel's APPROX
};

// Runtime args and identity of the calling thread.
uint32_t arg(uint32_t idx);
uint32_t common_arg(uint32_t idx);
uint32_t* arg_addr(uint32_t idx);
uint32_t my_x();
uint32_t my_y();
[[noreturn]] void fail(const char* what);

// Circular buffers (blocking, with page accounting).
void cb_reserve_back(uint32_t cb, uint32_t n);
void cb_push_back(uint32_t cb, uint32_t n);
void cb_wait_front(uint32_t cb, uint32_t n);
void cb_pop_front(uint32_t cb, uint32_t n);
bool cb_pages_reservable_at_back(uint32_t cb, uint32_t n);
bool cb_pages_available_at_front(uint32_t cb, uint32_t n);
uint32_t get_write_ptr(uint32_t cb);
uint32_t get_read_ptr(uint32_t cb);
uint32_t get_tile_size(uint32_t cb);
uint32_t get_dataformat(uint32_t cb);

// NoC: 64-bit NoC addresses are DRAM addresses (tensor pages) or L1 addresses (bit 63 set).
uint64_t dram_page_noc_addr(uint32_t bank_base, uint32_t page_size, uint32_t page_id, uint32_t offset);
uint64_t l1_noc_addr(uint32_t x, uint32_t y, uint32_t l1_addr);
uint64_t local_l1_noc_addr(uint32_t l1_addr);
void noc_read(uint64_t src, uint32_t dst_l1, uint32_t size);
void noc_write(uint32_t src_l1, uint64_t dst, uint32_t size);
void noc_read_barrier();
void noc_write_barrier();
// Semaphores (per-core L1 words, ProgramDescription.semaphores) and NOC0 multicast (a rectangle of worker cores).
uint32_t semaphore_addr(uint32_t id);
void sem_wait(uintptr_t addr, uint32_t val, bool at_least);
void sem_set_local(uintptr_t addr, uint32_t val);
void sem_inc(uint64_t dst, uint32_t incr);
void sem_inc_mcast(uint64_t dst, uint32_t incr, uint32_t num_dests, uint8_t noc);
uint64_t mcast_noc_addr(uint32_t x_start, uint32_t y_start, uint32_t x_end, uint32_t y_end, uint32_t l1_addr);
void noc_write_mcast(uint32_t src_l1, uint64_t dst, uint32_t size, uint32_t num_dests, bool loopback, uint8_t noc,
                     const char* api);

// Compute: op initialisation state. On a card an init programs the unpacker/math (macro-ops) or the SFPU for one
// op; running another op without its init computes the wrong thing, so the emulator checks the pairing.
enum FpuKind : uint32_t { K_NONE = 0, K_COPY = 1, K_BINARY = 2, K_BCAST = 3, K_MATMUL = 4, K_REDUCE = 5, K_TRANSPOSE = 6 };
// SFPU init kinds: UnaryOp values; SFPU_SCALAR for binop_with_scalar_tile_init; SFPU_BINARY + BinaryOp.
constexpr uint32_t SFPU_SCALAR = 1000, SFPU_BINARY = 2000;
void fpu_init(uint32_t kind, uint32_t a, uint32_t b);
void reduce_uninit();
void sfpu_init(uint32_t kind);

// Compute: configuration state. The unpacker's SrcA / SrcB formats and the packer's output format are hardware
// state set by compute_kernel_hw_startup and the reconfig calls; every op checks its operands' CB formats against
// it (see kernels/emu/API.md "Configuration state"). old_cb < 0: unconditional; else only if old/new formats differ.
enum SrcReg : uint32_t { SRC_A = 0, SRC_B = 1 };
void hw_startup(uint32_t srca_cb, uint32_t srcb_cb, uint32_t pack_cb, const char* api);
void unpack_reconfig(uint32_t reg, int old_cb, uint32_t new_cb, const char* api);
void pack_reconfig(int old_cb, uint32_t new_cb, const char* api);
void pack_l1_acc(uint32_t enable);
void copy_init_cb(uint32_t cb);

// Compute: DST register protocol.
void dst_acquire();
void dst_commit();
void dst_wait();
void dst_release();
void dst_acquire_legacy();  // acquire_dst(): math and pack in one section
void dst_release_legacy();  // release_dst()

// Compute: tile ops (FPU).
void copy_tile(uint32_t cb, uint32_t itile, uint32_t idst);
void binary_tiles(uint32_t op, uint32_t bcast, uint32_t cb0, uint32_t cb1, uint32_t t0, uint32_t t1, uint32_t idst,
                  uint32_t bcast_row);
void set_matmul_transpose(uint32_t transpose);
uint32_t matmul_transpose();
void matmul_tiles(uint32_t cb0, uint32_t cb1, uint32_t t0, uint32_t t1, uint32_t idst, uint32_t transpose);
void matmul_block(uint32_t cb0, uint32_t cb1, uint32_t t0, uint32_t t1, uint32_t idst, uint32_t transpose,
                  uint32_t ct, uint32_t rt, uint32_t kt);
void reduce_tile(uint32_t pool, uint32_t dim, uint32_t cb, uint32_t cb_scaler, uint32_t itile, uint32_t itile_scaler,
                 uint32_t idst);
void transpose_tile(uint32_t cb, uint32_t itile, uint32_t idst);
// Compute: SFPU ops on DST.
void sfpu_unary(uint32_t op, uint32_t idst, float param, uint32_t vector_mode);
void sfpu_binary(uint32_t op, uint32_t idst0, uint32_t idst1, uint32_t odst);
// Compute: pack DST -> CB.
void pack_tile(uint32_t idst, uint32_t cb, uint32_t out_index, bool out_of_order);
void check_cb(uint32_t cb, const char* api);

}  // namespace tgemu
