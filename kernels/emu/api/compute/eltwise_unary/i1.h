// Emulator stand-in for tt-metal api/compute/eltwise_unary/i1.h (see kernels/emu/API.md).
#pragma once
#include "../../../emu/compute.h"
