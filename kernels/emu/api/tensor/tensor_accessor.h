// Emulator stand-in for tt-metal api/tensor/tensor_accessor.h (see kernels/emu/API.md).
#pragma once
#include "../../emu/dataflow.h"
