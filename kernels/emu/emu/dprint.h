// Emulator DPRINT (api/debug/dprint.h): tt-metal 0.81.1's fmt-style device print, `DPRINT("x = {}\n", x)`.
// Printed to the runner's stderr (forwarded by runtime/emulator.py), each line prefixed by core and kernel role.
// Supported replacement fields: {} and {:spec} with spec [#][0][width][.precision][x|X|f|e|g|d].
#pragma once
#include <cstdio>
#include <sstream>
#include <string>
#include <type_traits>

#include "runtime.h"

namespace tgemu {
void dprint_emit(const std::string& text);

inline void dprint_field(std::ostringstream& os, const std::string& spec, double v, bool integral, unsigned long long u) {
    char fmt[32] = "%", buf[128];
    std::string s = spec;
    char conv = integral ? 'l' : 'g';
    if (!s.empty() && std::string("xXfeg d").find(s.back()) != std::string::npos) {
        conv = s.back();
        s.pop_back();
    }
    std::snprintf(fmt + 1, sizeof fmt - 1, "%s", s.c_str());
    std::string f = fmt;
    if (conv == 'x' || conv == 'X') {
        f += std::string("ll") + conv;
        std::snprintf(buf, sizeof buf, f.c_str(), u);
    } else if (conv == 'l' || conv == 'd') {
        f += "lld";
        std::snprintf(buf, sizeof buf, f.c_str(), (long long)u);
    } else {
        f += conv;
        std::snprintf(buf, sizeof buf, f.c_str(), v);
    }
    os << buf;
}
template <typename T>
void dprint_arg(std::ostringstream& os, const std::string& spec, const T& v) {
    if constexpr (std::is_floating_point_v<T>) {
        dprint_field(os, spec, double(v), false, 0);
    } else if constexpr (std::is_integral_v<T> || std::is_enum_v<T>) {
        dprint_field(os, spec, 0.0, true, (unsigned long long)(v));
    } else {
        os << v;
    }
}
inline void dprint_format(std::ostringstream& os, const char* f) { os << f; }
template <typename T, typename... Rest>
void dprint_format(std::ostringstream& os, const char* f, const T& v, const Rest&... rest) {
    for (; *f; f++) {
        if (f[0] == '{' && f[1] == '{') { os << '{'; f++; continue; }
        if (f[0] == '}' && f[1] == '}') { os << '}'; f++; continue; }
        if (*f == '{') {
            const char* e = f;
            while (*e && *e != '}') e++;
            std::string spec(f + 1, e);
            if (!spec.empty() && spec[0] == ':') spec.erase(0, 1);
            dprint_arg(os, spec, v);
            dprint_format(os, *e ? e + 1 : e, rest...);
            return;
        }
        os << *f;
    }
}
template <typename... Args>
void dprint(const char* f, const Args&... args) {
    std::ostringstream os;
    dprint_format(os, f, args...);
    dprint_emit(os.str());
}
}  // namespace tgemu

#define DPRINT(format, ...) ::tgemu::dprint(format, ##__VA_ARGS__)
#define DEVICE_PRINT(format, ...) ::tgemu::dprint(format, ##__VA_ARGS__)
#define DPRINT_UNPACK(format, ...) ::tgemu::dprint(format, ##__VA_ARGS__)
#define DPRINT_MATH(format, ...) ::tgemu::dprint(format, ##__VA_ARGS__)
#define DPRINT_PACK(format, ...) ::tgemu::dprint(format, ##__VA_ARGS__)
#define DPRINT_DATA0(format, ...) ::tgemu::dprint(format, ##__VA_ARGS__)
#define DPRINT_DATA1(format, ...) ::tgemu::dprint(format, ##__VA_ARGS__)
