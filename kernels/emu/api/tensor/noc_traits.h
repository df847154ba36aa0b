// Emulator stand-in for tt-metal api/tensor/noc_traits.h (see kernels/emu/API.md).
#pragma once
#include "../../emu/noc.h"
