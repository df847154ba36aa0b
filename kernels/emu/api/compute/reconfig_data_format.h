// Emulator stand-in for tt-metal api/compute/reconfig_data_format.h: the whole emulated compute API (see kernels/emu/API.md).
#pragma once
#include "../../emu/compute.h"
