// Conformance negative test: a bug on the NCRISC-only path of a dataflow kernel (tt-metal kernels branch on the RISC
// they are built for). Only the NCRISC parse (-DCOMPILE_FOR_NCRISC) sees it; the BRISC parse of the same file passes.
#include <stdint.h>

#include "api/dataflow/dataflow_api.h"

void kernel_main() {
    constexpr uint32_t cb_out = 16;
    cb_wait_front(cb_out, 1);
#ifdef COMPILE_FOR_NCRISC
    noc_async_write_barrier(noc_index, 1);  // no such overload
#else
    noc_async_write_barrier();
#endif
    cb_pop_front(cb_out, 1);
}
