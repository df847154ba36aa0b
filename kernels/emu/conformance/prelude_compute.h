// Prelude for the API-conformance parse of compute kernels against the real tt-metal headers (CMakeLists.txt).
// tt-metal's JIT compiles compute kernels with the API in scope unqualified; with no TRISC_* role defined the
// LLK bodies drop out, so the parse checks names, arity and argument types of API calls.
namespace ckernel {}
using namespace ckernel;
