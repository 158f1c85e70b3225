#include "data/spm_tools.h"

#include <stdio.h>
#include <stdlib.h>

#include "io/process.h"
#include "util.h"

static const char *const INSTALL_HINT = "install Debian's sentencepiece package: sudo scripts/setup.sh";

void spm_train_bpe(const char *input, const char *prefix, int64_t vocab, int64_t max_line_bytes, const char *log_path) {
    char a_input[4200], a_prefix[4200], a_vocab[64], a_maxlen[64];
    snprintf(a_input, sizeof a_input, "--input=%s", input);
    snprintf(a_prefix, sizeof a_prefix, "--model_prefix=%s", prefix);
    snprintf(a_vocab, sizeof a_vocab, "--vocab_size=%lld", (long long)vocab);
    snprintf(a_maxlen, sizeof a_maxlen, "--max_sentence_length=%lld", (long long)(max_line_bytes > 4192 ? max_line_bytes : 4192));
    char *argv[] = {"spm_train", a_input, a_prefix, a_vocab, a_maxlen, "--model_type=bpe",
                    "--character_coverage=0.999", "--byte_fallback=true", "--split_digits=true",
                    "--normalization_rule_name=nmt_nfkc", "--add_dummy_prefix=false", "--pad_id=0", "--bos_id=1",
                    "--eos_id=2", "--unk_id=3", "--hard_vocab_limit=false", NULL};
    Child c = child_start(argv, NULL, NULL, log_path, INSTALL_HINT);
    char buf[4096];
    while (fread(buf, 1, sizeof buf, c.out) > 0) continue; // drain stdout; progress goes to the log
    char what[4200];
    snprintf(what, sizeof what, "tokenizer training failed (log: %s)", log_path);
    child_finish(&c, what);
}

void spm_encode_file(const char *model, const char *text_path, SpmLineFn on_line, void *ctx) {
    char a_model[4200];
    snprintf(a_model, sizeof a_model, "--model=%s", model);
    char *argv[] = {"spm_encode", a_model, "--output_format=id", NULL};
    Child c = child_start(argv, NULL, text_path, NULL, INSTALL_HINT);
    char *line = NULL;
    size_t cap = 0;
    int32_t *ids = NULL;
    int64_t ids_cap = 0;
    while (getline(&line, &cap, c.out) >= 0) {
        int64_t n = 0;
        for (char *p = line, *end; *p && *p != '\n'; p = end) {
            long v = strtol(p, &end, 10);
            if (end == p) die("spm_encode printed a non-id: %s", line);
            if (n == ids_cap) ids = xrealloc(ids, sizeof(int32_t) * (size_t)(ids_cap = ids_cap ? 2 * ids_cap : 1024));
            ids[n++] = (int32_t)v;
            while (*end == ' ') end++;
        }
        on_line(ids, n, ctx);
    }
    free(line);
    free(ids);
    char what[4200];
    snprintf(what, sizeof what, "encoding %s with %s failed", text_path, model);
    child_finish(&c, what);
}
