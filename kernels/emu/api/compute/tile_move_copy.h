// Emulator stand-in for tt-metal api/compute/tile_move_copy.h: the whole emulated compute API (see kernels/emu/API.md).
#pragma once
#include "../../emu/compute.h"
