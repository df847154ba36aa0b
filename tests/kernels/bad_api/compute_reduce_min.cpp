// Conformance negative test: reduce with PoolType::MIN. The API accepts the enum value, but the LLK has no FPU MIN
// pool and rejects it with a static_assert in the unpack thread (llk_unpack_AB_reduce.h), which only the
// TRISC_UNPACK parse instantiates.
#include <stdint.h>

#include "api/compute/reduce.h"

void kernel_main() {
    reduce_init<PoolType::MIN, ReduceDim::REDUCE_ROW>(0, 1, 16);
    tile_regs_acquire();
    reduce_tile<PoolType::MIN, ReduceDim::REDUCE_ROW>(0, 1, 0, 0, 0);
    tile_regs_commit();
}
