// tg-emu-run JOB ERRFILE: runs one emulator job (see runtime/emulator.py) in its own process, so that a kernel
// that crashes or spins cannot take the caller down with it.
#include <cstdio>

extern "C" int tgemu_run_job(const char* job_path, const char* err_path);

int main(int argc, char** argv) {
    if (argc != 3) {
        std::fprintf(stderr, "usage: %s JOB ERRFILE\n", argv[0]);
        return 2;
    }
    return tgemu_run_job(argv[1], argv[2]);
}
