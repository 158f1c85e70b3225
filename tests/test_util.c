// Helpers whose output users see: Python-style float text in the log lines.
#include <string.h>

#include "test.h"
#include "util.h"

// Expected strings are Python 3's repr() of the same doubles.
TEST(util_py_float_repr_matches_python) {
    struct {
        double x;
        const char *repr;
    } cases[] = {{0.0, "0.0"},     {0.05, "0.05"},   {100.0, "100.0"}, {1e-5, "1e-05"},   {1e16, "1e+16"},
                 {-2.5, "-2.5"},   {1e-8, "1e-08"}, {0.0001, "0.0001"}, {600.0, "600.0"}, {0.1 + 0.2, "0.30000000000000004"},
                 {123456789012345678.0, "1.2345678901234568e+17"}};
    char buf[32];
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
        CHECK(!strcmp(py_float_repr(buf, cases[i].x), cases[i].repr), "%s, expected %s", buf, cases[i].repr);
}
