// `pgolf prep`: plain text -> SentencePiece BPE tokenizer + train/val token shards, the way
// parameter-golf's download_hf_docs_and_tokenize.py exports FineWeb: documents in order, the first
// PREP_VAL_DOCS to validation, each written as BOS followed by its ids, shards of 10^8 tokens.
//
// Deviation: the tokenizer is trained on the training documents only (the reference trains on the
// document stream, validation included); on a corpus this small the held-out text would shape the vocab.
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/commands.h"
#include "data/shard.h"
#include "data/spm.h"
#include "data/spm_tools.h"
#include "io/process.h"
#include "util.h"

#define PREP_SHARD_TOKENS 100000000
#define PREP_BOS_ID 1

// ---- documents: one line of text each (spm_encode encodes line by line) ----

typedef struct {
    char **text;
    int64_t n, cap;
    int64_t max_len;
    char *cur; // document being assembled
    size_t cur_len, cur_cap;
} Docs;

// Appends a line to the current document, whitespace-trimmed and joined with a space.
static void doc_append(Docs *d, char *line, size_t len) {
    for (size_t i = 0; i < len; i++)
        if (line[i] == '\0' || line[i] == '\t' || line[i] == '\r' || line[i] == '\n') line[i] = ' ';
    while (len > 0 && line[len - 1] == ' ') len--;
    while (len > 0 && *line == ' ') line++, len--;
    if (len == 0) return;
    if (d->cur_len + len + 2 > d->cur_cap) d->cur = xrealloc(d->cur, d->cur_cap = 2 * (d->cur_len + len + 2));
    if (d->cur_len > 0) d->cur[d->cur_len++] = ' ';
    memcpy(d->cur + d->cur_len, line, len);
    d->cur_len += len;
    d->cur[d->cur_len] = 0;
}

static void doc_end(Docs *d) {
    if (d->cur_len == 0) return;
    if (d->n == d->cap) d->text = xrealloc(d->text, sizeof(char *) * (size_t)(d->cap = d->cap ? 2 * d->cap : 1024));
    d->text[d->n++] = xstrdup(d->cur);
    if ((int64_t)d->cur_len > d->max_len) d->max_len = (int64_t)d->cur_len;
    d->cur_len = 0;
}

static void docs_free(Docs *d) {
    for (int64_t i = 0; i < d->n; i++) free(d->text[i]);
    free(d->text);
    free(d->cur);
}

// PREP_INPUT: documents are separated by blank lines.
static void read_text_docs(const char *path, Docs *d) {
    FILE *f = xfopen(path, "rb");
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    while ((len = getline(&line, &cap, f)) >= 0) {
        size_t k = 0;
        while (k < (size_t)len && (line[k] == ' ' || line[k] == '\t' || line[k] == '\r' || line[k] == '\n')) k++;
        if (k == (size_t)len) doc_end(d);
        else doc_append(d, line, (size_t)len);
    }
    doc_end(d);
    free(line);
    fclose(f);
}

// The default corpus: the King James Bible from Debian's bible-kjv, one chapter per document.
// `bible` prints a header line ("Genesis 1") before each chapter and indented verses under it.
static void read_bible_docs(Docs *d) {
    char *argv[] = {"bible", "-l", "100000", "Gen1:1-Rev22:21", NULL};
    Child c = child_start(argv, NULL, NULL, NULL, "install Debian's bible-kjv package: sudo scripts/setup.sh");
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    while ((len = getline(&line, &cap, c.out)) >= 0) {
        if (len <= 1) continue;
        if (line[0] != ' ') doc_end(d); // a chapter header starts the next document
        doc_append(d, line, (size_t)len);
    }
    doc_end(d);
    free(line);
    child_finish(&c, "reading the King James Bible");
}

// ---- shards ----

typedef struct {
    const char *dir, *split;
    uint16_t *buf;
    int64_t fill, tokens, vocab;
    int64_t docs_done, docs_total;
    int files;
} ShardWriter;

static void shard_flush(ShardWriter *w) {
    if (w->fill == 0) return;
    char path[4096];
    snprintf(path, sizeof path, "%s/fineweb_%s_%06d.bin", w->dir, w->split, w->files++);
    shard_write(path, w->buf, w->fill);
    w->fill = 0;
}

static void shard_push(ShardWriter *w, int64_t id) {
    if (id < 0 || id >= w->vocab) die("spm_encode produced id %lld outside VOCAB_SIZE=%lld", (long long)id, (long long)w->vocab);
    w->buf[w->fill++] = (uint16_t)id;
    w->tokens++;
    if (w->fill == PREP_SHARD_TOKENS) shard_flush(w);
}

static void write_document(const int32_t *ids, int64_t n, void *ctx) {
    ShardWriter *w = ctx;
    shard_push(w, PREP_BOS_ID);
    for (int64_t i = 0; i < n; i++) shard_push(w, ids[i]);
    char label[64];
    snprintf(label, sizeof label, "prep: encoding %s", w->split);
    progress(label, ++w->docs_done, w->docs_total);
}

// Shards of an older prep beyond the ones just written would otherwise join this split.
static void remove_stale_shards(const ShardWriter *w) {
    char pattern[4096];
    snprintf(pattern, sizeof pattern, "%s/fineweb_%s_*.bin", w->dir, w->split);
    char **paths;
    int n = glob_sorted(pattern, &paths);
    for (int i = w->files; i < n; i++)
        if (remove(paths[i]) != 0) die("cannot remove stale shard %s", paths[i]);
    free_paths(paths, n);
}

static int64_t encode_split(const char *model, const char *text_path, const char *dir, const char *split,
                            int64_t docs, int64_t vocab) {
    ShardWriter w = {.dir = dir, .split = split, .vocab = vocab, .docs_total = docs};
    w.buf = xmalloc(sizeof(uint16_t) * PREP_SHARD_TOKENS);
    spm_encode_file(model, text_path, write_document, &w);
    if (w.docs_done != docs) die("spm_encode returned %lld lines for %lld %s documents", (long long)w.docs_done, (long long)docs, split);
    shard_flush(&w);
    remove_stale_shards(&w);
    free(w.buf);
    return w.tokens;
}

// ---- command ----

static int64_t write_docs(const char *path, char **text, int64_t n) {
    FILE *f = xfopen(path, "wb");
    int64_t bytes = 0;
    for (int64_t i = 0; i < n; i++) {
        fprintf(f, "%s\n", text[i]);
        bytes += (int64_t)strlen(text[i]);
    }
    if (fclose(f) != 0) die("cannot write %s", path);
    return bytes;
}

static void install_file(const char *from, const char *to) {
    size_t len;
    uint8_t *data = read_file(from, &len);
    write_file_atomic(to, data, len);
    free(data);
    remove(from);
}

static void mkdir_parent(const char *path) {
    char *dir = xstrdup(path);
    char *slash = strrchr(dir, '/');
    if (slash) {
        *slash = 0;
        if (dir[0]) mkdir_p(dir);
    }
    free(dir);
}

int cmd_prep(int argc, char **argv) {
    Config c;
    cli_setup(&c, argc, argv, CG_DATA | CG_PREP, "prep",
              "Train a SentencePiece BPE tokenizer on a text corpus and write train/val token shards.\n"
              "Default corpus: the King James Bible (Debian's bible-kjv), one chapter per document.\n"
              "PREP_INPUT: a text file whose documents are separated by blank lines.",
              0);
    if (c.vocab_size < 260 || c.vocab_size > 65536) die("VOCAB_SIZE=%lld: prep needs 260..65536 (byte pieces + uint16 shards)", (long long)c.vocab_size);
    if (c.prep_val_docs < 1) die("PREP_VAL_DOCS=%lld must be at least 1", (long long)c.prep_val_docs);

    Docs docs = {0};
    if (c.prep_input[0]) {
        log0("prep: reading %s", c.prep_input);
        read_text_docs(c.prep_input, &docs);
    } else {
        log0("prep: reading the King James Bible (bible-kjv)");
        read_bible_docs(&docs);
    }
    if (docs.n <= c.prep_val_docs)
        die("prep: %lld documents, but PREP_VAL_DOCS=%lld leaves none for training (%s)", (long long)docs.n,
            (long long)c.prep_val_docs, c.prep_input[0] ? c.prep_input : "bible-kjv");
    int64_t n_val = c.prep_val_docs, n_train = docs.n - n_val;

    char tmpdir[PATH_MAX];
    snprintf(tmpdir, sizeof tmpdir, "%s/pgolf_prep_XXXXXX", temp_dir());
    if (!mkdtemp(tmpdir)) die("cannot create a temporary directory under %s: %s", temp_dir(), strerror(errno));
    remove_at_exit(tmpdir); // however prep ends (a corpus too small for VOCAB_SIZE, an interrupt, ...)
    char train_txt[PATH_MAX + 32], val_txt[PATH_MAX + 32], prefix[PATH_MAX + 32], tmp_model[PATH_MAX + 64],
        tmp_vocab[PATH_MAX + 64], train_log[PATH_MAX + 32];
    snprintf(train_txt, sizeof train_txt, "%s/train.txt", tmpdir);
    snprintf(val_txt, sizeof val_txt, "%s/val.txt", tmpdir);
    snprintf(prefix, sizeof prefix, "%s/tokenizer", tmpdir);
    snprintf(tmp_model, sizeof tmp_model, "%s.model", prefix);
    snprintf(tmp_vocab, sizeof tmp_vocab, "%s.vocab", prefix);
    snprintf(train_log, sizeof train_log, "%s/spm_train.log", tmpdir);
    const char *scratch[] = {train_txt, val_txt, tmp_model, tmp_vocab, train_log};
    for (int i = 0; i < 5; i++) remove_at_exit(scratch[i]); // all spm_train and prep write there
    int64_t val_bytes = write_docs(val_txt, docs.text, n_val);
    int64_t train_bytes = write_docs(train_txt, docs.text + n_val, n_train);
    log0("prep: %lld documents: %lld train (%lld bytes), %lld val (%lld bytes)", (long long)docs.n, (long long)n_train,
         (long long)train_bytes, (long long)n_val, (long long)val_bytes);

    log0("prep: training a %lld-piece BPE tokenizer with spm_train", (long long)c.vocab_size);
    double t0 = now_seconds();
    spm_train_bpe(train_txt, prefix, c.vocab_size, docs.max_len + 1, train_log);
    SpmModel *sp = spm_load(tmp_model);
    if (spm_vocab_size(sp) != c.vocab_size)
        die("prep: spm_train made %lld pieces, not VOCAB_SIZE=%lld: the corpus is too small for this vocabulary",
            (long long)spm_vocab_size(sp), (long long)c.vocab_size);
    spm_free(sp);
    log0("prep: tokenizer trained in %.1fs", now_seconds() - t0);

    // Tokenizer first, then shards: each file is atomic; an interrupted prep is repaired by rerunning it.
    mkdir_parent(c.tokenizer_path);
    mkdir_p(c.data_path);
    install_file(tmp_model, c.tokenizer_path);
    char *vocab_path = xmalloc(strlen(c.tokenizer_path) + 8);
    strcpy(vocab_path, c.tokenizer_path);
    char *dot = strrchr(vocab_path, '.');
    if (dot && !strcmp(dot, ".model")) *dot = 0;
    strcat(vocab_path, ".vocab");
    install_file(tmp_vocab, vocab_path);

    int64_t val_tokens = encode_split(c.tokenizer_path, val_txt, c.data_path, "val", n_val, c.vocab_size);
    int64_t train_tokens = encode_split(c.tokenizer_path, train_txt, c.data_path, "train", n_train, c.vocab_size);
    log0("prep: tokenizer %s (+ %s)", c.tokenizer_path, vocab_path);
    log0("prep: shards in %s: train_tokens:%lld val_tokens:%lld val_bytes_per_token:%.3f", c.data_path,
         (long long)train_tokens, (long long)val_tokens, (double)val_bytes / (double)val_tokens);

    free(vocab_path);
    docs_free(&docs);
    return 0;
}
