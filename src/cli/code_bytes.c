// The code bytes counted against the artifact limit: the Makefile sums the sizes of every file that
// builds pgolf (src/**/*.c, src/**/*.h, Makefile) into PGOLF_CODE_BYTES.
#include "cli/commands.h"

#ifndef PGOLF_CODE_BYTES
#error "PGOLF_CODE_BYTES is set by the Makefile"
#endif

long long pgolf_code_bytes(void) { return PGOLF_CODE_BYTES; }
