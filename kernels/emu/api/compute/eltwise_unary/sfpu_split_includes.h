// Emulator stand-in for tt-metal api/compute/eltwise_unary/sfpu_split_includes.h (see kernels/emu/API.md).
#pragma once
#include "../../../emu/compute.h"
