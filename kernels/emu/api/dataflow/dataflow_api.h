// Emulator stand-in for tt-metal api/dataflow/dataflow_api.h (see kernels/emu/API.md).
#pragma once
#include "../../emu/dataflow.h"
