// Emulator stand-in for tt-metal api/debug/dprint.h (see kernels/emu/API.md).
#pragma once
#include "../../emu/dprint.h"
