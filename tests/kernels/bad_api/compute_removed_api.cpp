// Conformance negative test: calls APIs that tt-metal 0.81.1 no longer has (mm_init, transpose_wh_tile).
// The conformance check (ctest conformance_rejects_removed_api) must fail to parse this file.
#include <stdint.h>

#include "api/compute/matmul.h"
#include "api/compute/transpose.h"

void kernel_main() {
    mm_init(0, 1, 16);
    tile_regs_acquire();
    transpose_wh_tile(0, 0, 0);
    tile_regs_commit();
}
