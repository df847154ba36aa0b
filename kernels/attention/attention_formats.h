// Compute-side piece shared by the attention forward (compute.cpp) and backward (compute_bwd.cpp) kernels.
#pragma once
#include <stdint.h>
#include "api/compute/pack.h"
#include "api/compute/reconfig_data_format.h"

// Which CB last configured each unpacker source register and the packer, so that every reconfiguration can use the
// (old, new) form, which reprograms only when the formats differ (most CBs here share a format).
struct Formats {
    uint32_t a, b, pack;
    void src(uint32_t new_a, uint32_t new_b) {
        reconfig_data_format(a, new_a, b, new_b);
        a = new_a;
        b = new_b;
    }
    void srca(uint32_t new_a) {
        reconfig_data_format_srca(a, new_a);
        a = new_a;
    }
    void out(uint32_t new_pack) {
        pack_reconfig_data_format(pack, new_pack);
        pack = new_pack;
    }
};
