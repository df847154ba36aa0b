// Emulator stand-in for tt-metal api/debug/device_print.h (see kernels/emu/API.md).
#pragma once
#include "../../emu/dprint.h"
