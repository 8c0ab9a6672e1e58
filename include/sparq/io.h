/* Tensor files: safetensors (read by mmap, write), NumPy .npy (read, write),
 * IDX as used by (Fashion-)MNIST (read, plain or gzip), and the atomic file
 * writer they share.
 *
 * Every function that fails returns a sparq_status and records a one-line
 * message that starts with the file path, "PATH: what is wrong", readable with
 * sparq_last_error(). Parsers treat every byte as hostile: sizes are bounded
 * and overflow-checked before anything is allocated or read, and no input
 * makes them read outside the file. Writers are atomic: the destination is
 * either the complete new file or left exactly as it was. */
#ifndef SPARQ_IO_H
#define SPARQ_IO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sparq/status.h"
#include "sparq/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------- owned tensors */

/* Frees t->data (allocated by a sparq reader with sparq_alloc) and sets it
 * to NULL; ndim and shape are left alone. Safe on a zeroed struct and twice.
 * Never call it on a safetensors view: those point into the mapped file. */
void sparq_tensor_free(sparq_tensor *t);

/* Converts every element of `t` (any dtype; the data may be unaligned, as
 * safetensors views are) to float into out[0 .. numel). F64 and 64-bit
 * integers are rounded to the nearest float; BOOL gives 0 or 1. Fails with
 * SPARQ_ERR_ARG on a bad dtype, ndim or shape. */
sparq_status sparq_tensor_to_f32(const sparq_tensor *t, float *out);

/* ------------------------------------------------------------------ IDX */

/* Largest tensor an IDX read produces, in bytes of the output dtype. */
#define SPARQ_IDX_MAX_BYTES ((size_t)2 << 30)

/* Reads an IDX file (LeCun's MNIST format), plain or gzip-compressed; gzip is
 * recognised by its magic bytes 1f 8b, not by the file name. Header: two zero
 * bytes, a type byte, the number of dimensions (1 .. SPARQ_MAX_DIMS), then
 * each dimension as a big-endian u32 (each >= 1). Payload types map to
 * dtypes as 0x08 u8 -> U8, 0x09 i8 -> I8, 0x0B i16 -> I32 (sparq has no 16-bit
 * integer dtype, so i16 is widened), 0x0C i32 -> I32, 0x0D f32 -> F32,
 * 0x0E f64 -> F64, converted from big-endian to host order. The payload must
 * hold exactly the declared number of elements: truncated files and trailing
 * bytes are errors, as are totals above SPARQ_IDX_MAX_BYTES.
 *
 * On success *out is filled and out->data is a new sparq_alloc block that the
 * caller frees with sparq_tensor_free(). On failure *out is zeroed. */
sparq_status sparq_idx_read(const char *path, sparq_tensor *out);

/* Same, from `size` bytes in memory (plain or gzip); `name` stands in for the
 * path in error messages. The bytes are not kept. */
sparq_status sparq_idx_read_memory(const void *data, size_t size, const char *name, sparq_tensor *out);

/* ------------------------------------------------------------------ npy */

/* Largest .npy header accepted, in bytes (numpy itself refuses > 10000 by
 * default; 1 MiB leaves room for any shape of up to SPARQ_MAX_DIMS dims). */
#define SPARQ_NPY_MAX_HEADER ((size_t)1 << 20)

/* Reads a NumPy .npy file, format version 1.0, 2.0 or 3.0. The header is a
 * Python dict literal with exactly the keys 'descr', 'fortran_order' and
 * 'shape', parsed strictly (Python literal syntax, trailing commas allowed,
 * `()` is a scalar). Supported descr: '<f2' F16, '<f4' F32, '<f8' F64,
 * '|i1' I8, '|u1' U8, '|b1' BOOL, '<i4' I32, '<i8' I64 ('<' is accepted for
 * the 1-byte types too). Big-endian data and fortran_order True are refused
 * with SPARQ_ERR_UNSUPPORTED, other descrs too. The data must fill the rest
 * of the file exactly: short files and trailing bytes are format errors.
 *
 * On success out->data is a new sparq_alloc block (never NULL, also for an
 * empty array) that the caller frees with sparq_tensor_free(). On failure
 * *out is zeroed. */
sparq_status sparq_npy_read(const char *path, sparq_tensor *out);

/* Same, from `size` bytes in memory; `name` stands in for the path in error
 * messages. The bytes are not kept. */
sparq_status sparq_npy_read_memory(const void *data, size_t size, const char *name, sparq_tensor *out);

/* Writes `t` as .npy, atomically. Version 1.0, or 2.0 when the header does
 * not fit in 65535 bytes; the header is padded with spaces and ends in '\n'
 * so the data starts at a multiple of 64 bytes, as numpy writes it. BF16 and
 * the F8 dtypes have no numpy equivalent: SPARQ_ERR_UNSUPPORTED. t->data may
 * be NULL only when the tensor is empty. */
sparq_status sparq_npy_write(const char *path, const sparq_tensor *t);

/* ---------------------------------------------------------- safetensors */

/* Largest safetensors JSON header accepted, in bytes (the reference
 * implementation uses the same 100 MB limit). */
#define SPARQ_SAFETENSORS_MAX_HEADER ((size_t)100000000)

/* An open safetensors file. All fields are read-only to the caller and stay
 * valid until sparq_safetensors_close().
 *
 * tensors[i] is a view: its data points into the read-only mapping of the
 * file (writing through it crashes) and is only byte-aligned, because a
 * tensor starts wherever its data_offsets say, after a header of any length.
 * Read elements with sparq_tensor_get() or sparq_tensor_to_f32(), or memcpy
 * them; do not cast data to float* and dereference. A tensor with no
 * elements still has a non-NULL data pointer (not to be dereferenced).
 *
 * Tensors appear in the order of the JSON header; names[i] names tensors[i].
 * __metadata__ (absent = zero entries) appears in header order as well. */
typedef struct sparq_safetensors {
  size_t count;              /* number of tensors */
  const char *const *names;  /* count names, unique, UTF-8 */
  const sparq_tensor *tensors;
  size_t metadata_count;
  const char *const *metadata_keys;   /* metadata_count keys, unique */
  const char *const *metadata_values; /* the matching values */
  const char *path;          /* the path (or name) given to open */
  struct sparq_safetensors_impl *impl; /* private */
} sparq_safetensors;

/* Opens and validates a safetensors file: an 8-byte little-endian header
 * length N (at most SPARQ_SAFETENSORS_MAX_HEADER and at most the file size
 * minus 8), then N bytes of UTF-8 JSON: an object whose keys are tensor names
 * (no duplicates) mapping to {"dtype": F64|F32|F16|BF16|F8_E4M3|F8_E5M2|I64|
 * I32|I8|U8|BOOL, "shape": [up to SPARQ_MAX_DIMS integers >= 0],
 * "data_offsets": [begin, end]}, plus an optional "__metadata__" object of
 * string values. Every tensor's end - begin must equal its byte size, and the
 * ranges must tile the data region after the header exactly: no overlap, no
 * hole, nothing left over. The header may be padded with trailing spaces.
 *
 * On success *out is a new handle to close with sparq_safetensors_close().
 * On failure *out is NULL and nothing stays mapped. */
sparq_status sparq_safetensors_open(const char *path, sparq_safetensors **out);

/* Same over `size` bytes in memory, which the handle borrows: they must stay
 * valid and unchanged until the handle is closed. `name` stands in for the
 * path in error messages and in ->path. */
sparq_status sparq_safetensors_open_memory(const void *data, size_t size, const char *name,
                                           sparq_safetensors **out);

/* The tensor called `name`, or NULL if there is none (no error recorded).
 * O(log count). */
const sparq_tensor *sparq_safetensors_find(const sparq_safetensors *st, const char *name);

/* Same, but a missing name fails with SPARQ_ERR_NOT_FOUND and the message
 * "PATH: no tensor named 'NAME'". */
sparq_status sparq_safetensors_get(const sparq_safetensors *st, const char *name, const sparq_tensor **out);

/* The value of metadata `key`, or NULL if absent. */
const char *sparq_safetensors_metadata(const sparq_safetensors *st, const char *key);

/* Metadata `key` parsed as a decimal integer (strtoll, the whole value) or
 * a finite float (strtof). A missing key fails with SPARQ_ERR_FORMAT
 * "PATH: metadata has no 'KEY'" when required, and otherwise returns
 * SPARQ_OK leaving *out unchanged (a default); a value that does not parse
 * fails with SPARQ_ERR_FORMAT naming the file, key and value. */
sparq_status sparq_safetensors_metadata_int(const sparq_safetensors *st, const char *key, bool required,
                                            int64_t *out);
sparq_status sparq_safetensors_metadata_float(const sparq_safetensors *st, const char *key, bool required,
                                              float *out);

/* Unmaps the file and frees the handle. NULL is fine. */
void sparq_safetensors_close(sparq_safetensors *st);

/* One tensor to write: a name and a tensor whose data is read (unaligned
 * access is fine). */
typedef struct sparq_named_tensor {
  const char *name;
  sparq_tensor tensor;
} sparq_named_tensor;

/* One __metadata__ entry. */
typedef struct sparq_metadata_entry {
  const char *key;
  const char *value;
} sparq_metadata_entry;

/* Writes `count` tensors and `metadata_count` metadata entries as a
 * safetensors file, atomically (see sparq_atomic_open). The header lists the
 * tensors, and their data follows, in the given order, back to back; the
 * header is padded with spaces to a multiple of 8 bytes so that the data
 * region starts 8-byte aligned. __metadata__ is written only when
 * metadata_count > 0. Names and metadata must be valid UTF-8 without NUL,
 * names unique, non-empty and not "__metadata__"; a tensor's data may be
 * NULL only when it has no elements. Bad arguments fail with SPARQ_ERR_ARG
 * before anything is created. */
sparq_status sparq_safetensors_write(const char *path, const sparq_named_tensor *tensors, size_t count,
                                     const sparq_metadata_entry *metadata, size_t metadata_count);

/* ------------------------------------------------------ shipped models */

/* The path of `file` among the weights shipped in models/ (the source
 * tree's copy first, then DATADIR/sparq of the install prefix), written to
 * out (size bytes). SPARQ_ERR_NOT_FOUND naming the file when neither is
 * readable. */
sparq_status sparq_shipped_model_path(const char *file, char *out, size_t size);

/* ------------------------------------------------------- atomic writing */

/* A file being written atomically: the bytes go to a new temporary file in
 * the destination's directory (so rename cannot cross file systems), and
 * commit does fsync, rename over the destination, fsync of the directory.
 * Until commit succeeds the destination is untouched; any failure removes
 * the temporary file. The new file gets mode 0666 minus the umask. */
typedef struct sparq_atomic_file {
  int fd;         /* -1 when not open */
  char *path;     /* destination, owned */
  char *tmp_path; /* temporary file, owned */
} sparq_atomic_file;

/* Creates the temporary file for `path`. On failure nothing is left behind
 * and f is safe to abort. */
sparq_status sparq_atomic_open(sparq_atomic_file *f, const char *path);
/* Appends `bytes` bytes (retrying short writes). On failure the temporary
 * file is removed (f is aborted). */
sparq_status sparq_atomic_write(sparq_atomic_file *f, const void *data, size_t bytes);
/* fsync, close, rename onto the destination, fsync the directory. On failure
 * the temporary file is removed. Either way f is finished. */
sparq_status sparq_atomic_commit(sparq_atomic_file *f);
/* Closes and removes the temporary file; no effect on a finished f. */
void sparq_atomic_abort(sparq_atomic_file *f);

/* Writes `bytes` bytes to `path` atomically (open, write, commit). */
sparq_status sparq_write_file_atomic(const char *path, const void *data, size_t bytes);

/* ---------------------------------------------------------- file format */

typedef enum sparq_file_format {
  SPARQ_FORMAT_UNKNOWN = 0,
  SPARQ_FORMAT_SAFETENSORS,
  SPARQ_FORMAT_NPY,
  SPARQ_FORMAT_IDX,    /* plain IDX */
  SPARQ_FORMAT_IDX_GZ, /* gzip; assumed to hold IDX */
} sparq_file_format;

/* Guesses the format from the first bytes of a file: "\x93NUMPY" is npy,
 * 1f 8b is gzip, 00 00 T D with a known IDX type T is IDX, and an 8-byte
 * little-endian length followed by '{' is safetensors. `size` may be less
 * than the whole file; 16 bytes are enough. */
sparq_file_format sparq_detect_format(const void *head, size_t size);

/* Reads the first bytes of `path` and applies sparq_detect_format. Fails
 * (message "PATH: ...") if the file cannot be read or matches no format. */
sparq_status sparq_detect_file_format(const char *path, sparq_file_format *out);

#ifdef __cplusplus
}
#endif
#endif
