// Emulator stand-in for tt-metal api/compute/compute_kernel_hw_startup.h: the whole emulated compute API (see kernels/emu/API.md).
#pragma once
#include "../../emu/compute.h"
