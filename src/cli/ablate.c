// `pgolf ablate`: trains a control and variants over several seeds (one after the other: two cores
// cannot run two trainings at once without slowing both), then compares each variant with the control
// by a one-sided Welch t-test of "improves val_loss by more than ABLATE_MARGIN nats", the challenge's
// significance rule (p < 0.01).
//
//   pgolf ablate control: 'lr_hi:MATRIX_LR=0.06' 'deep:NUM_LAYERS=6,MODEL_DIM=192'
//
// Each argument is NAME:SETTINGS with SETTINGS a comma-separated list of ENV=VALUE applied on top of
// the environment; an argument named "control" is the control (default: one with no settings).
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/commands.h"
#include "eval/stats.h"
#include "io/process.h"
#include "util.h"

extern char **environ;

#define MAX_ARMS 16
#define MAX_SEEDS 32

typedef struct {
    char *name, *settings; // settings: "ENV=V,ENV=V"
    double loss[MAX_SEEDS], bpb[MAX_SEEDS];
} Arm;

// Our environment plus `extra` (NAME=VALUE strings, later ones win).
static char **child_env(char **extra, int n_extra) {
    int n = 0;
    while (environ[n]) n++;
    char **env = xcalloc((size_t)(n + n_extra + 1), sizeof(char *));
    int m = 0;
    for (int i = 0; i < n; i++) {
        int overridden = 0;
        for (int k = 0; k < n_extra; k++) {
            size_t len = strcspn(extra[k], "=");
            overridden |= !strncmp(environ[i], extra[k], len) && environ[i][len] == '=';
        }
        if (!overridden) env[m++] = environ[i];
    }
    for (int k = 0; k < n_extra; k++) env[m++] = extra[k];
    return env;
}

// One training run; returns the final round-trip val_loss / val_bpb from its log lines.
static void run_arm(const Arm *a, long long seed, const char *out_dir, double *loss, double *bpb) {
    char *extra[64], seed_s[64], run_s[256], out_s[8400];
    int n = 0;
    char *settings = xstrdup(a->settings);
    for (char *tok = strtok(settings, ","); tok && n < 60; tok = strtok(NULL, ",")) {
        if (!strchr(tok, '=')) die("ablate: arm %s: setting '%s' is not ENV=VALUE", a->name, tok);
        extra[n++] = tok;
    }
    snprintf(seed_s, sizeof seed_s, "SEED=%lld", seed);
    snprintf(run_s, sizeof run_s, "RUN_ID=ablate_%s_%lld", a->name, seed);
    snprintf(out_s, sizeof out_s, "OUT_DIR=%s/%s_%lld", out_dir, a->name, seed);
    extra[n++] = seed_s, extra[n++] = run_s, extra[n++] = out_s;
    mkdir_p(out_s + strlen("OUT_DIR="));
    char **env = child_env(extra, n);
    char self[4096];
    ssize_t len = readlink("/proc/self/exe", self, sizeof self - 1);
    if (len <= 0) die("ablate: cannot find the pgolf binary (/proc/self/exe)");
    self[len] = 0;
    char *argv[] = {self, "train", NULL};
    Child c = child_start(argv, env, NULL, NULL, "");
    char *line = NULL;
    size_t cap = 0;
    *loss = *bpb = -1;
    while (getline(&line, &cap, c.out) >= 0) {
        const char *k = strstr(line, "_roundtrip_exact val_loss:");
        if (strncmp(line, "final_", 6) || !k) continue;
        if (sscanf(k, "_roundtrip_exact val_loss:%lf val_bpb:%lf", loss, bpb) != 2) *loss = -1;
    }
    free(line);
    char what[8800];
    snprintf(what, sizeof what, "ablate: arm %s, seed %lld (log: %s/logs)", a->name, seed, out_s + strlen("OUT_DIR="));
    child_finish(&c, what);
    if (*loss < 0) die("%s printed no final_*_roundtrip_exact line", what);
    free(env);
    free(settings);
}

static int parse_seeds(const char *text, long long *seeds) {
    int n = 0;
    char *copy = xstrdup(text);
    for (char *tok = strtok(copy, ","); tok; tok = strtok(NULL, ",")) {
        char *end;
        long long v = strtoll(tok, &end, 10);
        if (*end || end == tok) die("ABLATE_SEEDS=%s: '%s' is not an integer", text, tok);
        if (n == MAX_SEEDS) die("ABLATE_SEEDS: at most %d seeds", MAX_SEEDS);
        seeds[n++] = v;
    }
    free(copy);
    if (n < 2) die("ABLATE_SEEDS=%s: a t-test needs at least 2 seeds", text);
    return n;
}

int cmd_ablate(int argc, char **argv) {
    Config c;
    int npos = cli_setup(&c, argc, argv, CG_ABLATE | CG_RUN, "ablate",
                         "Train NAME:ENV=V,ENV=V arms (and a control) over ABLATE_SEEDS; print means, differences and\n"
                         "one-sided Welch p-values of improving val_loss by more than ABLATE_MARGIN nats.\n"
                         "Every other setting (model, data, schedule) comes from the environment, as for pgolf train.",
                         MAX_ARMS - 1);
    long long seeds[MAX_SEEDS];
    int n_seeds = parse_seeds(c.ablate_seeds, seeds);
    Arm arms[MAX_ARMS];
    int n_arms = 1;
    arms[0] = (Arm){.name = "control", .settings = ""};
    for (int i = 1; i <= npos; i++) {
        char *colon = strchr(argv[i], ':');
        if (!colon || colon == argv[i]) die("ablate: argument '%s' is not NAME:ENV=V,ENV=V", argv[i]);
        *colon = 0;
        Arm *a = !strcmp(argv[i], "control") ? &arms[0] : &arms[n_arms++];
        *a = (Arm){.name = argv[i], .settings = colon + 1};
    }
    if (n_arms < 2) die("ablate: name at least one variant (NAME:ENV=V,...)");
    char out_dir[4200];
    snprintf(out_dir, sizeof out_dir, "%s/ablate", c.out_dir);
    int total = n_arms * n_seeds, done = 0;
    for (int s = 0; s < n_seeds; s++) // seed-major: an interrupted ablation still has every arm for the first seeds
        for (int a = 0; a < n_arms; a++) {
            run_arm(&arms[a], seeds[s], out_dir, &arms[a].loss[s], &arms[a].bpb[s]);
            log0("ablate: %s seed:%lld val_loss:%.6f val_bpb:%.6f (%d/%d)", arms[a].name, seeds[s], arms[a].loss[s],
                 arms[a].bpb[s], ++done, total);
        }

    Sample cl = sample_of(arms[0].loss, n_seeds), cb = sample_of(arms[0].bpb, n_seeds);
    log0("%-16s %5s %22s %22s %12s %12s %8s %7s %10s", "arm", "seeds", "val_loss mean+-sd", "val_bpb mean+-sd", "d_nats",
         "d_bpb", "t", "df", "p");
    for (int a = 0; a < n_arms; a++) {
        Sample l = sample_of(arms[a].loss, n_seeds), b = sample_of(arms[a].bpb, n_seeds);
        char ls[64], bs[64];
        snprintf(ls, sizeof ls, "%.5f+-%.5f", l.mean, l.sd);
        snprintf(bs, sizeof bs, "%.5f+-%.5f", b.mean, b.sd);
        if (a == 0) {
            log0("%-16s %5d %22s %22s %12s %12s %8s %7s %10s", arms[a].name, n_seeds, ls, bs, "-", "-", "-", "-", "-");
            continue;
        }
        double t, df, p = welch_one_sided_p(cl, l, c.ablate_margin, &t, &df);
        log0("%-16s %5d %22s %22s %+12.5f %+12.5f %8.3f %7.2f %10.3g%s", arms[a].name, n_seeds, ls, bs, cl.mean - l.mean,
             cb.mean - b.mean, t, df, p, p < 0.01 ? " significant" : "");
    }
    log0("d_* = control - arm (positive: the arm is better); p: one-sided Welch test of d_nats > %g", c.ablate_margin);
    return 0;
}
