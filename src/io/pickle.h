// Python pickles (protocols 2-5) as torch.save writes them, read into a tree of values without running
// anything: a global is a name, REDUCE a call node (callable, args) left for the caller to interpret,
// BINPERSID a persistent-id node. The one call built here is collections.OrderedDict(), an empty dict,
// since SETITEMS then fills it. BUILD's state (an object's __dict__, such as a state_dict's _metadata) is
// dropped. Every value is allocated from the Pickle and freed with it.
#pragma once
#include <stddef.h>
#include <stdint.h>

typedef enum { PK_NONE, PK_BOOL, PK_INT, PK_FLOAT, PK_STR, PK_TUPLE, PK_LIST, PK_DICT, PK_GLOBAL, PK_CALL, PK_PERSID } PkType;

typedef struct PkValue PkValue;
struct PkValue {
    PkType type;
    int64_t i;   // PK_BOOL, PK_INT
    double f;    // PK_FLOAT
    char *s;     // PK_STR (NUL-terminated copy, len bytes), PK_GLOBAL ("module.name")
    size_t len;
    PkValue **items; // PK_TUPLE/PK_LIST: n items; PK_DICT: n keys and values interleaved (2n);
    int64_t n, cap;  // PK_CALL: callable, args tuple; PK_PERSID: the id
};

typedef struct Pickle Pickle;

// Reads the pickle in buf[0..len) (named `what` in errors); dies with the byte offset on a malformed or
// unsupported stream. *root is the value STOP returned.
Pickle *pickle_read(const uint8_t *buf, size_t len, const char *what, const PkValue **root);
void pickle_free(Pickle *p);

// The value of the last entry whose key is the string `key` (NULL if absent; d must be a PK_DICT).
const PkValue *pk_dict_get(const PkValue *d, const char *key);
int pk_is_str(const PkValue *v, const char *s);
int pk_is_global(const PkValue *v, const char *name);
const char *pk_type_name(PkType t);
