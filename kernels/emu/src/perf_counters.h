// Per-thread counters for the performance model (tilegraph/perf): what each kernel thread of each core does, counted
// at the entry of the emulated API call (tiles unpacked / math ops by kind and fidelity / tiles packed, SFPU ops, NoC
// transfers with sizes, DRAM bytes per bank, CB waits). Kept apart from the tile-op bodies on purpose: the hooks in
// runtime.cpp are one line each, so the numerics of the ops can change without touching the counting.
// Written by the runner after a successful job as "thread X Y ROLE KERNEL" lines followed by "KEY VALUE" lines.
#pragma once

#include <cstdint>
#include <cstdio>
#include <map>
#include <string>

namespace tgemu {

// DRAM pages are interleaved round-robin over the banks (12 on Wormhole, 8 on Blackhole: page i in bank i % banks).
// Counting bytes per page index mod 24 (lcm of 12 and 8) lets the model fold them onto either device's banks.
constexpr uint32_t PERF_DRAM_PAGE_CLASSES = 24;

struct PerfCounters {
    std::map<std::string, uint64_t> n;
    void add(const std::string& key, uint64_t v = 1) { n[key] += v; }
    void max(const std::string& key, uint64_t v) {
        uint64_t& slot = n[key];
        if (v > slot) slot = v;
    }
    void write(std::FILE* f) const {
        for (auto& [k, v] : n) std::fprintf(f, "%s %llu\n", k.c_str(), (unsigned long long)v);
    }
};

inline const char* perf_fidelity(uint32_t f) {
    return f == 0 ? "LoFi" : f == 2 ? "HiFi2" : f == 3 ? "HiFi3" : "HiFi4";
}

inline std::string perf_cb(uint32_t cb, const char* what) { return "cb." + std::to_string(cb) + "." + what; }

}  // namespace tgemu

namespace tgemu {

inline const char* perf_fmt(uint32_t f) {
    return f == FMT_FLOAT32 ? "float32" : f == FMT_FLOAT16_B ? "bfloat16" : f == FMT_BFP8_B ? "bfloat8_b" : "other";
}

// Names of the UnaryOp / BinaryOp codes (emu/runtime.h), in their enum order.
inline std::string perf_unary(uint32_t op) {
    static const char* names[] = {"exp", "recip", "rsqrt", "sqrt", "sigmoid", "silu", "tanh", "neg", "square", "abs",
                                  "log", "fill", "add_scalar", "sub_scalar", "mul_scalar", "div_scalar",
                                  "rsub_scalar", "relu", "gelu", "exp2", "power", "exp_approx"};
    return op < sizeof names / sizeof *names ? names[op] : "op" + std::to_string(op);
}
inline std::string perf_binary(uint32_t op) {
    static const char* names[] = {"add", "sub", "mul", "max", "min", "div", "rsub"};
    return op < sizeof names / sizeof *names ? names[op] : "op" + std::to_string(op);
}

}  // namespace tgemu
