#include "eval/stats.h"

#include <math.h>

// Continued fraction of the regularized incomplete beta (modified Lentz), converging for x < (a+1)/(a+b+2).
static double beta_cf(double a, double b, double x) {
    const double tiny = 1e-300;
    double c = 1, d = 1 - (a + b) * x / (a + 1);
    d = 1 / (fabs(d) < tiny ? tiny : d);
    double h = d;
    for (int m = 1; m <= 500; m++) {
        double m2 = 2.0 * m, aa = m * (b - m) * x / ((a + m2 - 1) * (a + m2));
        d = 1 + aa * d, c = 1 + aa / c;
        d = 1 / (fabs(d) < tiny ? tiny : d), c = fabs(c) < tiny ? tiny : c;
        h *= d * c;
        aa = -(a + m) * (a + b + m) * x / ((a + m2) * (a + m2 + 1));
        d = 1 + aa * d, c = 1 + aa / c;
        d = 1 / (fabs(d) < tiny ? tiny : d), c = fabs(c) < tiny ? tiny : c;
        double del = d * c;
        h *= del;
        if (fabs(del - 1) < 1e-15) break;
    }
    return h;
}

// I_x(a, b)
static double incomplete_beta(double a, double b, double x) {
    if (x <= 0) return 0;
    if (x >= 1) return 1;
    double front = exp(lgamma(a + b) - lgamma(a) - lgamma(b) + a * log(x) + b * log1p(-x));
    if (x < (a + 1) / (a + b + 2)) return front * beta_cf(a, b, x) / a;
    return 1 - exp(lgamma(a + b) - lgamma(a) - lgamma(b) + b * log1p(-x) + a * log(x)) * beta_cf(b, a, 1 - x) / b;
}

double student_t_sf(double t, double df) {
    double tail = 0.5 * incomplete_beta(df / 2, 0.5, df / (df + t * t)); // P(T > |t|)
    return t >= 0 ? tail : 1 - tail;
}

Sample sample_of(const double *x, int n) {
    Sample s = {n, 0, 0};
    for (int i = 0; i < n; i++) s.mean += x[i] / n;
    for (int i = 0; i < n; i++) s.sd += (x[i] - s.mean) * (x[i] - s.mean);
    s.sd = n > 1 ? sqrt(s.sd / (n - 1)) : 0;
    return s;
}

double welch_one_sided_p(Sample c, Sample v, double margin, double *t_out, double *df_out) {
    double vc = c.sd * c.sd / c.n, vv = v.sd * v.sd / v.n, se = sqrt(vc + vv);
    double t = (c.mean - v.mean - margin) / se;
    double df = (vc + vv) * (vc + vv) / (vc * vc / (c.n - 1) + vv * vv / (v.n - 1));
    if (t_out) *t_out = t;
    if (df_out) *df_out = df;
    return student_t_sf(t, df);
}
