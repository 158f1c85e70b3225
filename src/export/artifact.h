// pgolf's int8+zlib model artifact (final_model.int8.ptz): the counterpart of the reference's
// zlib-compressed torch.save pickle. pgolf does not write Python pickles from C, so the file is its
// own self-describing format; the tensors inside are quantized exactly like the reference's.
//
// Layout (little-endian; "str" is a u32 byte length then the bytes):
//   "PGOLFART"                      8-byte magic
//   u32 format version              ARTIFACT_VERSION
//   u32 compression                 ArtifactCompression of the payload
//   str scheme                      "int8_clean_per_row_v1"
//   str config                      the model configuration as KEY=VALUE\n lines
//   u32 tensor count, then per tensor: str name, u8 QuantKind, u8 ndim, u64 shape[ndim]
//   u64 raw payload bytes, u64 compressed payload bytes, then the compressed payload: per tensor
//       in table order, int8 values then fp16 row scales / the fp32 scale, or its fp16/fp32 values
//   u32 CRC-32 (zlib's) of every byte before it
#pragma once
#include <stdint.h>
#include <stdio.h>

#include "export/compress.h"
#include "tensor.h"

#define ARTIFACT_MAGIC "PGOLFART"
#define ARTIFACT_VERSION 1u


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

// Quantizes state (int8_clean_per_row_v1), compresses the payload (the reference: zlib level 9) and
// writes the file atomically.
void artifact_save_int8(const char *path, const char *config_text, const TensorList *state, Compressor comp, int level,
                        ArtifactStats *stats);
// Reads and fully validates an artifact; any problem is one error line naming the file.
Artifact *artifact_load(const char *path);
const char *artifact_config_text(const Artifact *a);
// Dequantizes into dst, whose names and shapes must match the artifact's tensors exactly.
void artifact_dequantize_into(const Artifact *a, const TensorList *dst);
// Format, configuration and each tensor's storage and bytes (for `pgolf inspect`).
void artifact_print_summary(const Artifact *a, FILE *f);
void artifact_free(Artifact *a);
