// Emulator stand-in for tt-metal api/dataflow/noc.h (see kernels/emu/API.md).
#pragma once
#include "../../emu/noc.h"
