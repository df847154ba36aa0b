// Conformance-parse stub of sfpi.h (the SFPU compiler's intrinsics header, part of tt-metal's RISC-V toolchain, not
// in the ttnn wheel). The LLK unpack headers include it but use none of it, so it is empty: the UNPACK-thread parse
// needs only the include to resolve. Anything that really uses SFPI (the MATH and PACK threads) fails to parse
// loudly with this stub, which is why the conformance check does not parse those threads.
#pragma once
