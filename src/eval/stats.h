// Statistics for ablations: Welch's t-test, as the challenge requires improvements to be shown at
// p < 0.01 over several seeds against a 0.005-nat margin.
#pragma once

// P(T > t) for Student's t with df (> 0, not necessarily whole) degrees of freedom.
double student_t_sf(double t, double df);

typedef struct {
    int n;
    double mean, sd; // sample standard deviation (n - 1)
} Sample;

Sample sample_of(const double *x, int n);

// One-sided Welch test of "mean(control) - mean(variant) > margin" (lower loss is better):
// t = (mc - mv - margin) / sqrt(sc^2/nc + sv^2/nv), Welch-Satterthwaite df; returns p = P(T > t).
double welch_one_sided_p(Sample control, Sample variant, double margin, double *t_out, double *df_out);
