// Conformance negative test: matmul_tiles with 4 arguments (tt-metal 0.81.1 takes 5: in0, in1, i0, i1, idst).
#include <stdint.h>

#include "api/compute/matmul.h"

void kernel_main() {
    matmul_init(0, 1);
    tile_regs_acquire();
    matmul_tiles(0, 1, 0, 0);
    tile_regs_commit();
}
