// Emulator stand-in for tt-metal api/dataflow/dataflow_buffer.h (see kernels/emu/API.md).
#pragma once
#include "../../emu/dataflow_buffer.h"
