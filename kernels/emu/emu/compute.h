// Emulator version of the compute kernel API (api/compute/*.h): CB sync, the DST register protocol, FPU tile ops
// (copy, eltwise binary with broadcasts, matmul, reduce, transpose), SFPU ops on DST and pack_tile.
// Names, template parameters and argument lists follow tt-metal 0.81.1; the conformance check (CMakeLists.txt)
// parses every kernel against the real headers too.
#pragma once
#include <cstring>

#include "common.h"

#ifndef DST_ACCUM_MODE
#define DST_ACCUM_MODE false
#endif
#ifndef MATH_FIDELITY
#define MATH_FIDELITY 4
#endif
#ifndef APPROX
#define APPROX false
#endif

namespace ckernel {

enum class ReduceDim : std::uint8_t { REDUCE_ROW, REDUCE_COL, REDUCE_SCALAR };
enum class PoolType : std::uint8_t { SUM, AVG, MAX, MIN };
enum class BroadcastType : std::uint8_t { NONE = 0, COL = 1, ROW = 2, SCALAR = 3 };
enum class EltwiseBinaryType : std::uint8_t { ELWMUL, ELWDIV, ELWADD, ELWSUB, ELWLESS };
enum class EltwiseBinaryReuseDestType { NONE = 0, DEST_TO_SRCA = 1, DEST_TO_SRCB = 2 };
enum class VectorMode : std::uint8_t { None = 0, R = 1, C = 2, RC = 4, RC_custom = 6, Invalid = 0xFF };
enum class InputClamping : std::uint8_t { ClampToNegative = 1, None = 0 };
enum class ReciprocalDestAcc { BF16, FP32 };
enum class ReciprocalApproxMode { Default, Fast };
enum class RsqrtMode { Default, Fast };
enum class DstRoundingMode { Default };
enum class SrcOrder { Regular, Reverse };
namespace p_sfpu {
constexpr std::uint16_t kCONST_1_FP16B = 0x3F80;
}

namespace emu_detail {
inline uint32_t vmode(VectorMode m) { return m == VectorMode::R ? 1 : m == VectorMode::C ? 2 : 4; }
inline float bits_to_float(uint32_t u) {
    float f;
    std::memcpy(&f, &u, 4);
    return f;
}
}  // namespace emu_detail

// ---- CB sync (compute side)
ALWI void cb_wait_front(uint32_t cbid, uint32_t ntiles) { tgemu::cb_wait_front(cbid, ntiles); }
ALWI void cb_pop_front(uint32_t cbid, uint32_t ntiles) { tgemu::cb_pop_front(cbid, ntiles); }
ALWI void cb_reserve_back(uint32_t cbid, uint32_t ntiles) { tgemu::cb_reserve_back(cbid, ntiles); }
ALWI void cb_push_back(uint32_t cbid, uint32_t ntiles) { tgemu::cb_push_back(cbid, ntiles); }

// ---- DST protocol
ALWI void tile_regs_acquire() { tgemu::dst_acquire(); }
template <bool is_fp32_dest_acc_en = DST_ACCUM_MODE>
ALWI void tile_regs_commit() { tgemu::dst_commit(); }
ALWI void tile_regs_wait() { tgemu::dst_wait(); }
template <bool is_fp32_dest_acc_en = DST_ACCUM_MODE>
ALWI void tile_regs_release() { tgemu::dst_release(); }
[[deprecated("Use tile_regs_acquire() instead")]] ALWI void acquire_dst() { tgemu::dst_acquire_legacy(); }
template <bool is_fp32_dest_acc_en = DST_ACCUM_MODE>
[[deprecated("Use tile_regs_release() instead")]] ALWI void release_dst() { tgemu::dst_release_legacy(); }

// ---- hardware start-up and (re)configuration: register state the ops are checked against (runtime.h)
template <SrcOrder src_order = SrcOrder::Regular>
ALWI void compute_kernel_hw_startup(uint32_t icb0, uint32_t icb1, uint32_t ocb) {
    constexpr bool reverse = src_order == SrcOrder::Reverse;  // Reverse: icb0 -> SrcB, icb1 -> SrcA (matmul)
    tgemu::hw_startup(reverse ? icb1 : icb0, reverse ? icb0 : icb1, ocb, "compute_kernel_hw_startup");
}
ALWI void compute_kernel_hw_startup(uint32_t icb0, uint32_t ocb) { compute_kernel_hw_startup(icb0, icb0, ocb); }
template <SrcOrder src_order = SrcOrder::Regular>
ALWI void reconfig_data_format(uint32_t icb0, uint32_t icb1) {
    constexpr bool reverse = src_order == SrcOrder::Reverse;
    tgemu::unpack_reconfig(tgemu::SRC_A, -1, reverse ? icb1 : icb0, "reconfig_data_format");
    tgemu::unpack_reconfig(tgemu::SRC_B, -1, reverse ? icb0 : icb1, "reconfig_data_format");
}
template <SrcOrder src_order = SrcOrder::Regular>
ALWI void reconfig_data_format(uint32_t icb0_old, uint32_t icb0_new, uint32_t icb1_old, uint32_t icb1_new) {
    constexpr bool reverse = src_order == SrcOrder::Reverse;
    tgemu::unpack_reconfig(tgemu::SRC_A, int(reverse ? icb1_old : icb0_old), reverse ? icb1_new : icb0_new,
                           "reconfig_data_format");
    tgemu::unpack_reconfig(tgemu::SRC_B, int(reverse ? icb0_old : icb1_old), reverse ? icb0_new : icb1_new,
                           "reconfig_data_format");
}
ALWI void reconfig_data_format_srca(uint32_t a) { tgemu::unpack_reconfig(tgemu::SRC_A, -1, a, "reconfig_data_format_srca"); }
ALWI void reconfig_data_format_srca(uint32_t old_a, uint32_t a) {
    tgemu::unpack_reconfig(tgemu::SRC_A, int(old_a), a, "reconfig_data_format_srca");
}
ALWI void reconfig_data_format_srcb(uint32_t b) { tgemu::unpack_reconfig(tgemu::SRC_B, -1, b, "reconfig_data_format_srcb"); }
ALWI void reconfig_data_format_srcb(uint32_t old_b, uint32_t b) {
    tgemu::unpack_reconfig(tgemu::SRC_B, int(old_b), b, "reconfig_data_format_srcb");
}
ALWI void pack_reconfig_data_format(uint32_t o) { tgemu::pack_reconfig(-1, o, "pack_reconfig_data_format"); }
ALWI void pack_reconfig_data_format(uint32_t old_o, uint32_t o) {
    tgemu::pack_reconfig(int(old_o), o, "pack_reconfig_data_format");
}
ALWI void pack_reconfig_l1_acc(uint32_t l1_acc_en) { tgemu::pack_l1_acc(l1_acc_en); }
// pack_init programs the packer's addressing for ocb, not its format (llk_pack_init).
ALWI void pack_init(uint32_t ocb, uint32_t call_line = __builtin_LINE()) { tgemu::check_cb(ocb, "pack_init"); }

// ---- copy / transpose
template <bool is_fp32_dest_acc_en = DST_ACCUM_MODE>
ALWI void copy_init(uint32_t cbid, uint32_t transpose = 0, uint32_t transpose_within_16x16_face = false,
                    uint32_t call_line = __builtin_LINE()) {
    tgemu::check_cb(cbid, "copy_init");
    if (transpose || transpose_within_16x16_face) tgemu::fail("copy_init with transpose is not emulated; use transpose_init");
    tgemu::fpu_init(tgemu::K_COPY, 0, 0);
    tgemu::copy_init_cb(cbid);
}
template <bool is_fp32_dest_acc_en = DST_ACCUM_MODE>
[[deprecated("Renamed to copy_init(). This will be removed after 20-09-2026.")]] ALWI void copy_tile_init(
    uint32_t cbid, uint32_t call_line = __builtin_LINE()) {
    tgemu::check_cb(cbid, "copy_tile_init");
    tgemu::fpu_init(tgemu::K_COPY, 0, 0);
    tgemu::copy_init_cb(cbid);
}
template <bool is_fp32_dest_acc_en = DST_ACCUM_MODE>
ALWI void copy_tile(uint32_t in_cb_id, uint32_t in_tile_index, uint32_t dst_tile_index) {
    tgemu::copy_tile(in_cb_id, in_tile_index, dst_tile_index);
}
template <bool is_fp32_dest_acc_en = DST_ACCUM_MODE>
ALWI void copy_block(uint32_t in_cb_id, uint32_t start_in, uint32_t start_dst, uint32_t ntiles) {
    for (uint32_t i = 0; i < ntiles; i++) tgemu::copy_tile(in_cb_id, start_in + i, start_dst + i);
}
template <bool is_fp32_dest_acc_en = DST_ACCUM_MODE>
ALWI void transpose_init(uint32_t icb, uint32_t call_line = __builtin_LINE()) {
    tgemu::check_cb(icb, "transpose_init");
    tgemu::fpu_init(tgemu::K_TRANSPOSE, 0, 0);
}
template <bool is_fp32_dest_acc_en = DST_ACCUM_MODE>
ALWI void transpose_tile(uint32_t icb, uint32_t itile, uint32_t idst) { tgemu::transpose_tile(icb, itile, idst); }

// ---- eltwise binary (FPU)
namespace emu_detail {
constexpr uint32_t op_code(EltwiseBinaryType t) {
    return t == EltwiseBinaryType::ELWADD ? tgemu::OP_ADD : t == EltwiseBinaryType::ELWSUB ? tgemu::OP_SUB : tgemu::OP_MUL;
}
}  // namespace emu_detail
template <bool full_init, EltwiseBinaryType t>
ALWI void binary_tiles_init(uint32_t icb0, uint32_t icb1, bool acc_to_dest = false, uint32_t call_line = __builtin_LINE()) {
    tgemu::check_cb(icb0, "binary_tiles_init");
    tgemu::check_cb(icb1, "binary_tiles_init");
    tgemu::fpu_init(tgemu::K_BINARY, emu_detail::op_code(t), 0);
}
ALWI void add_init(uint32_t a, uint32_t b, bool acc = false, uint32_t l = __builtin_LINE()) { binary_tiles_init<true, EltwiseBinaryType::ELWADD>(a, b); }
ALWI void sub_init(uint32_t a, uint32_t b, bool acc = false, uint32_t l = __builtin_LINE()) { binary_tiles_init<true, EltwiseBinaryType::ELWSUB>(a, b); }
ALWI void mul_init(uint32_t a, uint32_t b, bool acc = true, uint32_t l = __builtin_LINE()) { binary_tiles_init<true, EltwiseBinaryType::ELWMUL>(a, b); }
template <bool is_fp32_dest_acc_en = DST_ACCUM_MODE>
ALWI void add_tiles(uint32_t a, uint32_t b, uint32_t ta, uint32_t tb, uint32_t d) { tgemu::binary_tiles(tgemu::OP_ADD, tgemu::BC_NONE, a, b, ta, tb, d, 0); }
template <bool is_fp32_dest_acc_en = DST_ACCUM_MODE>
ALWI void sub_tiles(uint32_t a, uint32_t b, uint32_t ta, uint32_t tb, uint32_t d) { tgemu::binary_tiles(tgemu::OP_SUB, tgemu::BC_NONE, a, b, ta, tb, d, 0); }
template <bool is_fp32_dest_acc_en = DST_ACCUM_MODE>
ALWI void mul_tiles(uint32_t a, uint32_t b, uint32_t ta, uint32_t tb, uint32_t d) { tgemu::binary_tiles(tgemu::OP_MUL, tgemu::BC_NONE, a, b, ta, tb, d, 0); }

// ---- broadcasts
template <EltwiseBinaryType tBcastOp, BroadcastType tBcastDim>
ALWI void bcast_init(uint32_t icb0, uint32_t icb1, uint32_t call_line = __builtin_LINE()) {
    tgemu::check_cb(icb0, "bcast init");
    tgemu::check_cb(icb1, "bcast init");
    tgemu::fpu_init(tgemu::K_BCAST, emu_detail::op_code(tBcastOp), uint32_t(tBcastDim));
}
template <EltwiseBinaryType tBcastOp, BroadcastType tBcastDim, bool is_fp32_dest_acc_en = DST_ACCUM_MODE>
ALWI void any_tiles_bcast(uint32_t a, uint32_t b, uint32_t ta, uint32_t tb, uint32_t d, uint32_t bcast_row_idx = 0) {
    tgemu::binary_tiles(emu_detail::op_code(tBcastOp), uint32_t(tBcastDim), a, b, ta, tb, d, bcast_row_idx);
}
template <BroadcastType dim, bool f = DST_ACCUM_MODE>
ALWI void add_tiles_bcast(uint32_t a, uint32_t b, uint32_t ta, uint32_t tb, uint32_t d) { any_tiles_bcast<EltwiseBinaryType::ELWADD, dim>(a, b, ta, tb, d); }
template <BroadcastType dim, bool f = DST_ACCUM_MODE>
ALWI void sub_tiles_bcast(uint32_t a, uint32_t b, uint32_t ta, uint32_t tb, uint32_t d) { any_tiles_bcast<EltwiseBinaryType::ELWSUB, dim>(a, b, ta, tb, d); }
template <BroadcastType dim, bool f = DST_ACCUM_MODE>
ALWI void mul_tiles_bcast(uint32_t a, uint32_t b, uint32_t ta, uint32_t tb, uint32_t d) { any_tiles_bcast<EltwiseBinaryType::ELWMUL, dim>(a, b, ta, tb, d); }
#define TGEMU_BCAST(NAME, OP, DIM)                                                                   \
    template <bool is_fp32_dest_acc_en = DST_ACCUM_MODE>                                             \
    ALWI void NAME(uint32_t a, uint32_t b, uint32_t ta, uint32_t tb, uint32_t d) {                   \
        any_tiles_bcast<EltwiseBinaryType::OP, BroadcastType::DIM>(a, b, ta, tb, d);                 \
    }
#define TGEMU_BCAST_ROW(NAME, OP)                                                                    \
    template <bool is_fp32_dest_acc_en = DST_ACCUM_MODE>                                             \
    ALWI void NAME(uint32_t a, uint32_t b, uint32_t ta, uint32_t tb, uint32_t d, uint32_t row = 0) { \
        any_tiles_bcast<EltwiseBinaryType::OP, BroadcastType::ROW>(a, b, ta, tb, d, row);            \
    }
TGEMU_BCAST(add_tiles_bcast_cols, ELWADD, COL)
TGEMU_BCAST(sub_tiles_bcast_cols, ELWSUB, COL)
TGEMU_BCAST(mul_tiles_bcast_cols, ELWMUL, COL)
TGEMU_BCAST(add_tiles_bcast_scalar, ELWADD, SCALAR)
TGEMU_BCAST(sub_tiles_bcast_scalar, ELWSUB, SCALAR)
TGEMU_BCAST(mul_tiles_bcast_scalar, ELWMUL, SCALAR)
TGEMU_BCAST_ROW(add_tiles_bcast_rows, ELWADD)
TGEMU_BCAST_ROW(sub_tiles_bcast_rows, ELWSUB)
TGEMU_BCAST_ROW(mul_tiles_bcast_rows, ELWMUL)
#undef TGEMU_BCAST
#undef TGEMU_BCAST_ROW
#define TGEMU_BCAST_INIT(NAME, OP, DIM)                                                                 \
    ALWI void NAME(uint32_t icb0, uint32_t icb1, uint32_t call_line = __builtin_LINE()) {               \
        bcast_init<EltwiseBinaryType::OP, BroadcastType::DIM>(icb0, icb1);                               \
    }
TGEMU_BCAST_INIT(add_bcast_rows_init, ELWADD, ROW)
TGEMU_BCAST_INIT(sub_bcast_rows_init, ELWSUB, ROW)
TGEMU_BCAST_INIT(mul_bcast_rows_init, ELWMUL, ROW)
TGEMU_BCAST_INIT(add_bcast_cols_init, ELWADD, COL)
TGEMU_BCAST_INIT(sub_bcast_cols_init, ELWSUB, COL)
TGEMU_BCAST_INIT(mul_bcast_cols_init, ELWMUL, COL)
TGEMU_BCAST_INIT(add_bcast_scalar_init, ELWADD, SCALAR)
TGEMU_BCAST_INIT(sub_bcast_scalar_init, ELWSUB, SCALAR)
TGEMU_BCAST_INIT(mul_bcast_scalar_init, ELWMUL, SCALAR)
#undef TGEMU_BCAST_INIT

// ---- matmul
// matmul_init's transpose flag is state: later matmul_tiles compute DST += A x B^T when it is set.
ALWI void matmul_init(uint32_t in0, uint32_t in1, const uint32_t transpose = 0, uint32_t call_line = __builtin_LINE()) {
    tgemu::check_cb(in0, "matmul_init");
    tgemu::check_cb(in1, "matmul_init");
    tgemu::fpu_init(tgemu::K_MATMUL, 0, 0);
    tgemu::set_matmul_transpose(transpose);
}
ALWI void matmul_tiles(uint32_t in0, uint32_t in1, uint32_t t0, uint32_t t1, uint32_t idst) {
    tgemu::matmul_tiles(in0, in1, t0, t1, idst, tgemu::matmul_transpose());
}
ALWI void matmul_block_init(uint32_t in0, uint32_t in1, const uint32_t transpose = 0, uint32_t ct_dim = 1,
                            uint32_t rt_dim = 1, uint32_t kt_dim = 1, uint32_t call_line = __builtin_LINE()) {
    tgemu::check_cb(in0, "matmul_block_init");
    tgemu::check_cb(in1, "matmul_block_init");
    tgemu::fpu_init(tgemu::K_MATMUL, 0, 0);
    tgemu::set_matmul_transpose(transpose);
}
ALWI void matmul_block(uint32_t in0, uint32_t in1, uint32_t t0, uint32_t t1, uint32_t idst, const uint32_t transpose,
                       uint32_t ct_dim, uint32_t rt_dim, uint32_t kt_dim, uint32_t call_line = __builtin_LINE()) {
    tgemu::matmul_block(in0, in1, t0, t1, idst, transpose, ct_dim, rt_dim, kt_dim);
}

// ---- reduce
template <PoolType reduce_type, ReduceDim reduce_dim, bool is_fp32_dest_acc_en = DST_ACCUM_MODE>
ALWI void reduce_init(uint32_t icb, uint32_t icb_scaler, uint32_t ocb, uint32_t call_line = __builtin_LINE()) {
    tgemu::check_cb(icb, "reduce_init");
    tgemu::check_cb(icb_scaler, "reduce_init");
    tgemu::check_cb(ocb, "reduce_init");
    tgemu::fpu_init(tgemu::K_REDUCE, uint32_t(reduce_type), uint32_t(reduce_dim));
}
ALWI void reduce_uninit(uint32_t icb = 0) { tgemu::reduce_uninit(); }
template <PoolType reduce_type, ReduceDim reduce_dim, bool is_fp32_dest_acc_en = DST_ACCUM_MODE>
ALWI void reduce_tile(uint32_t icb, uint32_t icb_scaler, uint32_t itile, uint32_t itile_scaler, uint32_t idst) {
    tgemu::reduce_tile(uint32_t(reduce_type), uint32_t(reduce_dim), icb, icb_scaler, itile, itile_scaler, idst);
}

// ---- pack
template <bool out_of_order_output = false, bool is_fp32_dest_acc_en = DST_ACCUM_MODE>
ALWI void pack_tile(uint32_t ifrom_dst, uint32_t icb, uint32_t output_tile_index = 0) {
    tgemu::pack_tile(ifrom_dst, icb, output_tile_index, out_of_order_output);
}
template <bool is_fp32_dest_acc_en = DST_ACCUM_MODE>
ALWI void pack_block(uint32_t ifrom_dst, uint32_t icb, uint32_t ntiles) {
    for (uint32_t i = 0; i < ntiles; i++) tgemu::pack_tile(ifrom_dst + i, icb, 0, false);
}

// ---- SFPU unary ops on DST
#define TGEMU_INIT(NAME, KIND) \
    ALWI void NAME() { tgemu::sfpu_init(KIND); }
#define TGEMU_UNARY(NAME, OP)                                                       \
    template <bool is_fp32_dest_acc_en = DST_ACCUM_MODE>                            \
    ALWI void NAME(uint32_t idst) { tgemu::sfpu_unary(tgemu::OP, idst, 0.0f, 4); }
template <bool approx = false, uint32_t scale = 0x3F800000, InputClamping c = InputClamping::ClampToNegative,
          bool is_fp32_dest_acc_en = DST_ACCUM_MODE>
ALWI void exp_tile_init() { tgemu::sfpu_init(tgemu::U_EXP); }
template <bool approx = false, bool scale_en = false, InputClamping c = InputClamping::ClampToNegative,
          int iterations = 8, bool is_fp32_dest_acc_en = DST_ACCUM_MODE>
ALWI void exp_tile(uint32_t idst, VectorMode vector_mode = VectorMode::RC, uint16_t scale = p_sfpu::kCONST_1_FP16B) {
    // U_EXP's parameter scales the input first: exp(x * scale) (scale is a bf16 bit pattern).
    const float s = scale_en ? emu_detail::bits_to_float(uint32_t(scale) << 16) : 1.0f;
    tgemu::sfpu_unary(approx ? tgemu::U_EXP_APPROX : tgemu::U_EXP, idst, s, emu_detail::vmode(vector_mode));
}
template <ReciprocalDestAcc d = DST_ACCUM_MODE ? ReciprocalDestAcc::FP32 : ReciprocalDestAcc::BF16,
          ReciprocalApproxMode a = ReciprocalApproxMode::Default>
ALWI void recip_tile_init() { tgemu::sfpu_init(tgemu::U_RECIP); }
template <ReciprocalDestAcc d = DST_ACCUM_MODE ? ReciprocalDestAcc::FP32 : ReciprocalDestAcc::BF16,
          ReciprocalApproxMode a = ReciprocalApproxMode::Default>
ALWI void recip_tile(uint32_t idst, VectorMode vector_mode = VectorMode::RC) {
    tgemu::sfpu_unary(tgemu::U_RECIP, idst, 0.0f, emu_detail::vmode(vector_mode));
}
TGEMU_INIT(rsqrt_tile_init, tgemu::U_RSQRT)
template <RsqrtMode mode = RsqrtMode::Default, bool is_fp32_dest_acc_en = DST_ACCUM_MODE>
ALWI void rsqrt_tile(uint32_t idst) { tgemu::sfpu_unary(tgemu::U_RSQRT, idst, 0.0f, 4); }
TGEMU_INIT(sqrt_tile_init, tgemu::U_SQRT)
template <bool FAST_APPROX = false, bool is_fp32_dest_acc_en = DST_ACCUM_MODE>
ALWI void sqrt_tile(uint32_t idst) { tgemu::sfpu_unary(tgemu::U_SQRT, idst, 0.0f, 4); }
template <bool fast_and_approx = false>
ALWI void sigmoid_tile_init() { tgemu::sfpu_init(tgemu::U_SIGMOID); }
template <VectorMode vec_mode = VectorMode::RC, bool fast_and_approx = false, bool is_fp32_dest_acc_en = DST_ACCUM_MODE>
ALWI void sigmoid_tile(uint32_t idst) { tgemu::sfpu_unary(tgemu::U_SIGMOID, idst, 0.0f, emu_detail::vmode(vec_mode)); }
TGEMU_INIT(silu_tile_init, tgemu::U_SILU)
TGEMU_UNARY(silu_tile, U_SILU)
TGEMU_INIT(tanh_tile_init, tgemu::U_TANH)
TGEMU_UNARY(tanh_tile, U_TANH)
TGEMU_INIT(square_tile_init, tgemu::U_SQUARE)
TGEMU_UNARY(square_tile, U_SQUARE)
TGEMU_INIT(negative_tile_init, tgemu::U_NEG)
TGEMU_UNARY(negative_tile, U_NEG)
TGEMU_INIT(abs_tile_init, tgemu::U_ABS)
TGEMU_UNARY(abs_tile, U_ABS)
TGEMU_INIT(log_tile_init, tgemu::U_LOG)
TGEMU_UNARY(log_tile, U_LOG)
TGEMU_INIT(exp2_tile_init, tgemu::U_EXP2)
TGEMU_UNARY(exp2_tile, U_EXP2)
TGEMU_INIT(relu_tile_init, tgemu::U_RELU)
TGEMU_UNARY(relu_tile, U_RELU)
TGEMU_INIT(fill_tile_init, tgemu::U_FILL)
ALWI void fill_tile(uint32_t idst, float value) { tgemu::sfpu_unary(tgemu::U_FILL, idst, value, 4); }
ALWI void fill_tile_bitcast(uint32_t idst, uint32_t bits) {
    tgemu::sfpu_unary(tgemu::U_FILL, idst, emu_detail::bits_to_float(bits), 4);
}
TGEMU_INIT(binop_with_scalar_tile_init, tgemu::SFPU_SCALAR)
#define TGEMU_SCALAR(NAME, OP)                                                               \
    template <bool is_fp32_dest_acc_en = DST_ACCUM_MODE>                                     \
    ALWI void NAME(uint32_t idst, uint32_t param1) {                                         \
        tgemu::sfpu_unary(tgemu::OP, idst, emu_detail::bits_to_float(param1), 4);            \
    }
TGEMU_SCALAR(add_unary_tile, U_ADD_SCALAR)
TGEMU_SCALAR(sub_unary_tile, U_SUB_SCALAR)
TGEMU_SCALAR(mul_unary_tile, U_MUL_SCALAR)
TGEMU_SCALAR(div_unary_tile, U_DIV_SCALAR)
TGEMU_SCALAR(rsub_unary_tile, U_RSUB_SCALAR)
#undef TGEMU_SCALAR

// ---- SFPU binary ops between DST tiles
TGEMU_INIT(binary_max_tile_init, tgemu::SFPU_BINARY + tgemu::OP_MAX)
TGEMU_INIT(binary_min_tile_init, tgemu::SFPU_BINARY + tgemu::OP_MIN)
ALWI void binary_max_tile(uint32_t a, uint32_t b, uint32_t o, VectorMode m = VectorMode::RC) { tgemu::sfpu_binary(tgemu::OP_MAX, a, b, o); }
ALWI void binary_min_tile(uint32_t a, uint32_t b, uint32_t o, VectorMode m = VectorMode::RC) { tgemu::sfpu_binary(tgemu::OP_MIN, a, b, o); }
TGEMU_INIT(add_binary_tile_init, tgemu::SFPU_BINARY + tgemu::OP_ADD)
TGEMU_INIT(sub_binary_tile_init, tgemu::SFPU_BINARY + tgemu::OP_SUB)
TGEMU_INIT(mul_binary_tile_init, tgemu::SFPU_BINARY + tgemu::OP_MUL)
TGEMU_INIT(div_binary_tile_init, tgemu::SFPU_BINARY + tgemu::OP_DIV)
TGEMU_INIT(rsub_binary_tile_init, tgemu::SFPU_BINARY + tgemu::OP_RSUB)
template <DstRoundingMode r = DstRoundingMode::Default, bool is_fp32_dest_acc_en = DST_ACCUM_MODE>
ALWI void add_binary_tile(uint32_t a, uint32_t b, uint32_t o) { tgemu::sfpu_binary(tgemu::OP_ADD, a, b, o); }
template <DstRoundingMode r = DstRoundingMode::Default, bool is_fp32_dest_acc_en = DST_ACCUM_MODE>
ALWI void sub_binary_tile(uint32_t a, uint32_t b, uint32_t o) { tgemu::sfpu_binary(tgemu::OP_SUB, a, b, o); }
template <DstRoundingMode r = DstRoundingMode::Default, bool is_fp32_dest_acc_en = DST_ACCUM_MODE>
ALWI void rsub_binary_tile(uint32_t a, uint32_t b, uint32_t o) { tgemu::sfpu_binary(tgemu::OP_RSUB, a, b, o); }
template <bool is_fp32_dest_acc_en = DST_ACCUM_MODE>
ALWI void mul_binary_tile(uint32_t a, uint32_t b, uint32_t o) { tgemu::sfpu_binary(tgemu::OP_MUL, a, b, o); }
template <bool is_fp32_dest_acc_en = DST_ACCUM_MODE>
ALWI void div_binary_tile(uint32_t a, uint32_t b, uint32_t o) { tgemu::sfpu_binary(tgemu::OP_DIV, a, b, o); }
#undef TGEMU_INIT
#undef TGEMU_UNARY

}  // namespace ckernel

using namespace ckernel;
