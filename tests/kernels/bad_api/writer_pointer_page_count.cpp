// Conformance negative test: a pointer passed where tt-metal takes a page count. On a 64-bit host the headers only
// parse with -fpermissive, which downgrades this error to a warning; parse_check.py must still fail the parse.
#include <stdint.h>

#include "api/dataflow/dataflow_api.h"

void kernel_main() {
    constexpr uint32_t cb_out = 16;
    volatile tt_l1_ptr uint32_t* page = reinterpret_cast<volatile tt_l1_ptr uint32_t*>(get_read_ptr(cb_out));
    cb_wait_front(cb_out, 1);
    cb_pop_front(cb_out, page);  // meant: 1
}
