// Emulator stand-in for tt-metal api/tensor/tensor_accessor_args.h (see kernels/emu/API.md).
#pragma once
#include "../../emu/dataflow.h"
