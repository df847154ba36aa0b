// Conformance-parse stub of lltt.h (Tensix replay-buffer helpers; shipped with tt-metal's RISC-V toolchain, not in
// the ttnn wheel). Declarations only, so the LLK unpack bodies that use them parse on the host; never executed.
#pragma once
#include <cstdint>

namespace lltt {
enum ExecBool { NoExec, Exec };
template <ExecBool exec = NoExec>
inline void record(std::uint32_t start, std::uint32_t length) {}
inline void replay(std::uint32_t start, std::uint32_t length) {}
constexpr std::uint32_t replay_insn(std::uint32_t start, std::uint32_t length) { return 0; }
}  // namespace lltt
