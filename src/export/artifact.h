// pgolf's model artifact (final_model.int8.ptz): the counterpart of the reference's compressed
// torch.save pickle. pgolf does not write Python pickles from C, so the file is its own
// self-describing format; the tensors inside are quantized exactly like the reference's (or like the
// records' int6/GPTQ exports, export/quant_scheme.h).
//
// Layout (little-endian; "str" is a u32 byte length then the bytes):
//   "PGOLFART"                      8-byte magic
//   u32 format version              ARTIFACT_VERSION (version 1 files, without the layout word, still load)
//   u32 compressor                  Compressor of the payload (export/compress.h)
//   u32 layout                      version 2: 0 = as written, 1 = byte-shuffled (even bytes, then odd)
//   str scheme                      "int8_clean_per_row_v1", "int6_amax_per_row_v1", ...
//   str config                      the model configuration as KEY=VALUE\n lines
//   u32 tensor count, then per tensor: str name, u8 QuantKind, [u8 bits for QUANT_ROW_NBIT], u8 ndim,
//       u64 shape[ndim]
//   u64 raw payload bytes, u64 compressed payload bytes, then the compressed payload: per tensor
//       in table order, int8 values then fp16 row scales / the fp32 scale, or its fp16/fp32 values
//   u32 CRC-32 (zlib's) of every byte before it
#pragma once
#include <stdint.h>
#include <stdio.h>

#include "export/compress.h"
#include "export/quant_int8.h"
#include "tensor.h"

#define ARTIFACT_MAGIC "PGOLFART"
#define ARTIFACT_VERSION 2u

typedef struct {
    Compressor compressor;
    int level;        // the compressor's level
    int byte_shuffle; // store the payload as its even bytes, then its odd bytes
} ArtifactCompression;


typedef struct {
    int64_t param_count, num_tensors;
    int64_t num_float_tensors;     // int8-quantized tensors (the reference's counter)
    int64_t baseline_tensor_bytes; // numel * 4 over all tensors
    int64_t payload_bytes;         // the reference's int8_payload_bytes: int8 values, scales, float passthrough
    int64_t raw_bytes;             // the file's size with the payload uncompressed (the reference's raw_torch)
    int64_t compressed_bytes;      // payload after compression
    int64_t file_bytes;            // the artifact on disk: what counts against the size limit
} ArtifactStats;

typedef struct Artifact Artifact;

// Writes quantized tensors (scheme: their scheme's name) atomically; q: the quantizer's counters.
void artifact_save(const char *path, const char *config_text, const char *scheme, const QuantState *qs,
                   const QuantStats *q, ArtifactCompression comp, ArtifactStats *stats);
// The reference's export: quantize_state_dict_int8 (int8_clean_per_row_v1), then artifact_save.
void artifact_save_int8(const char *path, const char *config_text, const TensorList *state, ArtifactCompression comp,
                        ArtifactStats *stats);
const char *artifact_scheme(const Artifact *a);
// Reads and fully validates an artifact; any problem is one error line naming the file.
Artifact *artifact_load(const char *path);
// Fuzzers only: after die() was intercepted during artifact_load, frees what that load had allocated.
void artifact_abandon_load(void);
const char *artifact_config_text(const Artifact *a);
// Dequantizes into dst, whose names and shapes must match the artifact's tensors exactly.
void artifact_dequantize_into(const Artifact *a, const TensorList *dst);
// Format, configuration and each tensor's storage and bytes (for `pgolf inspect`).
void artifact_print_summary(const Artifact *a, FILE *f);
void artifact_free(Artifact *a);
