// The code bytes counted against the artifact limit, set by the Makefile: PGOLF_CODE_BYTES is the size of
// the binary's source bundle (scripts/bundle.sh: the files that build it, xz'd behind a 3-line sh header),
// PGOLF_SOURCE_BYTES the sum of those files' own sizes.
#include "cli/commands.h"

#if !defined(PGOLF_CODE_BYTES) || !defined(PGOLF_SOURCE_BYTES)
#error "PGOLF_CODE_BYTES and PGOLF_SOURCE_BYTES are set by the Makefile"
#endif

long long pgolf_code_bytes(void) { return PGOLF_CODE_BYTES; }
long long pgolf_source_bytes(void) { return PGOLF_SOURCE_BYTES; }
