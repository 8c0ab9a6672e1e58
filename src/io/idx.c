/* IDX reader (the MNIST / Fashion-MNIST container), plain or gzip.
 *
 * Both the file and the memory entry points parse a byte buffer (the file is
 * mmapped), so the fuzzed code is the code that reads real files. gzip is
 * decoded with zlib's inflate rather than gzread: it lets us tell a
 * truncated or corrupt stream from trailing junk, and works on memory. */
#include <limits.h>
#include <string.h>

#include <zlib.h>

#include "io/io_internal.h"

typedef struct idx_type {
  unsigned char code;
  sparq_dtype dtype; /* output dtype */
  size_t in_size;    /* bytes per element in the file */
  const char *name;
} idx_type;

static const idx_type idx_types[] = {
    {0x08, SPARQ_U8, 1, "u8"},   {0x09, SPARQ_I8, 1, "i8"},   {0x0B, SPARQ_I32, 2, "i16"},
    {0x0C, SPARQ_I32, 4, "i32"}, {0x0D, SPARQ_F32, 4, "f32"}, {0x0E, SPARQ_F64, 8, "f64"},
};

static const idx_type *find_type(unsigned char code) {
  for (size_t i = 0; i < sizeof idx_types / sizeof idx_types[0]; i++)
    if (idx_types[i].code == code) return &idx_types[i];
  return NULL;
}

/* deflate never expands more than 1032:1 (zlib's documented bound), so a
 * gzip input of n bytes cannot decode to more than this; checking the
 * declared size against it keeps a tiny hostile file from making us
 * allocate gigabytes before the stream runs dry. */
#define IDX_DEFLATE_MAX_RATIO 1032

/* A byte stream over the input: plain bytes or inflated gzip members. */
typedef struct idx_src {
  const char *name;
  const unsigned char *data;
  size_t size, pos; /* pos: next unread input byte */
  bool gz, z_open, z_member_done;
  z_stream z;
} idx_src;

static sparq_status gz_fail(idx_src *s, int zrc) {
  if (zrc == Z_MEM_ERROR) return sparq_fail(SPARQ_ERR_NOMEM, "%s: out of memory inflating gzip data", s->name);
  return sparq_fail(SPARQ_ERR_FORMAT, "%s: corrupt gzip data at compressed byte %zu: %s", s->name, s->pos,
                    s->z.msg ? s->z.msg : "invalid stream");
}

/* Reads up to `want` bytes into buf; *got < want only at the true end of the
 * input. A gzip stream that stops mid-member is an error, not an end. */
static sparq_status src_read(idx_src *s, unsigned char *buf, size_t want, size_t *got) {
  *got = 0;
  if (!s->gz) {
    size_t n = s->size - s->pos < want ? s->size - s->pos : want;
    if (n) memcpy(buf, s->data + s->pos, n);
    s->pos += n;
    *got = n;
    return SPARQ_OK;
  }
  while (*got < want) {
    if (s->z_member_done) {
      /* Concatenated members are valid gzip; anything else after a member
       * is junk that a careless writer (or an attacker) appended. */
      if (s->pos == s->size) return SPARQ_OK;
      if (s->size - s->pos < 2 || s->data[s->pos] != 0x1f || s->data[s->pos + 1] != 0x8b)
        return sparq_fail(SPARQ_ERR_FORMAT, "%s: %zu bytes of trailing junk after the gzip stream", s->name,
                          s->size - s->pos);
      int rc = inflateReset(&s->z);
      if (rc != Z_OK) return gz_fail(s, rc);
      s->z_member_done = false;
    }
    size_t in_left = s->size - s->pos, out_left = want - *got;
    s->z.next_in = (Bytef *)(uintptr_t)(s->data + s->pos); /* zlib never writes the input */
    s->z.avail_in = in_left > UINT_MAX ? UINT_MAX : (uInt)in_left;
    s->z.next_out = buf + *got;
    s->z.avail_out = out_left > UINT_MAX ? UINT_MAX : (uInt)out_left;
    uInt avail_in = s->z.avail_in, avail_out = s->z.avail_out;
    int rc = inflate(&s->z, Z_NO_FLUSH);
    s->pos += avail_in - s->z.avail_in;
    *got += avail_out - s->z.avail_out;
    if (rc == Z_STREAM_END) {
      s->z_member_done = true;
      continue;
    }
    /* With output space left, "no progress" can only mean no input left. */
    if (rc == Z_BUF_ERROR && s->pos == s->size)
      return sparq_fail(SPARQ_ERR_FORMAT, "%s: gzip stream is truncated (ends inside a member)", s->name);
    if (rc != Z_OK) return gz_fail(s, rc);
  }
  return SPARQ_OK;
}

/* Reads exactly `want` bytes or fails with a truncation message. */
static sparq_status src_need(idx_src *s, unsigned char *buf, size_t want, const char *what) {
  size_t got;
  sparq_status st = src_read(s, buf, want, &got);
  if (st) return st;
  if (got < want)
    return sparq_fail(SPARQ_ERR_FORMAT, "%s: truncated: %zu bytes of %s expected, only %zu left", s->name, want, what, got);
  return SPARQ_OK;
}

/* Converts n big-endian elements in place; i16 is widened to i32 by walking
 * forward from the second half of the buffer, which never overwrites input
 * not yet read (element i is written at 4i..4i+3, read at 2n+2i). */
static void to_host(unsigned char *buf, size_t n, const idx_type *t) {
  if (t->in_size == 2) {
    const unsigned char *in = buf + 2 * n;
    for (size_t i = 0; i < n; i++) {
      int32_t v = (int16_t)(uint16_t)(in[2 * i] << 8 | in[2 * i + 1]);
      memcpy(buf + 4 * i, &v, 4);
    }
  } else if (t->in_size == 4) {
    for (size_t i = 0; i < n; i++) {
      uint32_t v = io_be32(buf + 4 * i);
      memcpy(buf + 4 * i, &v, 4);
    }
  } else if (t->in_size == 8) {
    for (size_t i = 0; i < n; i++) {
      uint64_t v = (uint64_t)io_be32(buf + 8 * i) << 32 | io_be32(buf + 8 * i + 4);
      memcpy(buf + 8 * i, &v, 8);
    }
  }
}

static sparq_status parse(idx_src *s, sparq_tensor *out) {
  unsigned char head[4 + 4 * 255];
  sparq_status st = src_need(s, head, 4, "magic");
  if (st) return st;
  if (head[0] || head[1])
    return sparq_fail(SPARQ_ERR_FORMAT, "%s: not an IDX file (magic %02x %02x %02x %02x, expected 00 00 type ndim)",
                      s->name, head[0], head[1], head[2], head[3]);
  const idx_type *type = find_type(head[2]);
  if (!type)
    return sparq_fail(SPARQ_ERR_FORMAT, "%s: unknown IDX element type 0x%02x (known: 08 09 0b 0c 0d 0e)", s->name, head[2]);
  int ndim = head[3];
  if (ndim == 0) return sparq_fail(SPARQ_ERR_FORMAT, "%s: IDX header declares 0 dimensions", s->name);
  if (ndim > SPARQ_MAX_DIMS)
    return sparq_fail(SPARQ_ERR_UNSUPPORTED, "%s: IDX file has %d dimensions, sparq supports at most %d", s->name, ndim,
                      SPARQ_MAX_DIMS);
  st = src_need(s, head + 4, 4 * (size_t)ndim, "dimension sizes");
  if (st) return st;

  size_t numel = 1, out_bytes, in_bytes;
  for (int i = 0; i < ndim; i++) {
    uint32_t d = io_be32(head + 4 + 4 * i);
    if (d == 0) return sparq_fail(SPARQ_ERR_FORMAT, "%s: dimension %d is 0", s->name, i);
    out->shape[i] = d;
    if (!sparq_size_mul(numel, d, &numel))
      return sparq_fail(SPARQ_ERR_FORMAT, "%s: element count overflows", s->name);
  }
  if (!sparq_size_mul(numel, sparq_dtype_size(type->dtype), &out_bytes) || out_bytes > SPARQ_IDX_MAX_BYTES)
    return sparq_fail(SPARQ_ERR_NOMEM, "%s: declared %zu elements of %s exceed the %zu-byte IDX limit", s->name, numel,
                      type->name, SPARQ_IDX_MAX_BYTES);
  in_bytes = numel * type->in_size; /* <= out_bytes */
  if (!s->gz && s->size - s->pos != in_bytes) {
    if (s->size - s->pos < in_bytes)
      return sparq_fail(SPARQ_ERR_FORMAT, "%s: truncated: %zu elements of %s need %zu bytes, file has %zu", s->name,
                        numel, type->name, in_bytes, s->size - s->pos);
    return sparq_fail(SPARQ_ERR_FORMAT, "%s: trailing data (%zu bytes) after %zu elements of %s", s->name,
                      s->size - s->pos - in_bytes, numel, type->name);
  }
  if (s->gz && in_bytes / IDX_DEFLATE_MAX_RATIO > s->size)
    return sparq_fail(SPARQ_ERR_FORMAT, "%s: truncated: %zu elements of %s need %zu bytes, more than %zu bytes of gzip can hold",
                      s->name, numel, type->name, in_bytes, s->size);

  unsigned char *buf = sparq_alloc(out_bytes, s->name);
  if (!buf) return SPARQ_ERR_NOMEM;
  size_t got;
  st = src_read(s, buf + (out_bytes - in_bytes), in_bytes, &got);
  if (!st && got < in_bytes)
    st = sparq_fail(SPARQ_ERR_FORMAT, "%s: truncated: %zu elements of %s need %zu bytes, data has %zu", s->name, numel,
                    type->name, in_bytes, got);
  if (!st) {
    unsigned char extra;
    st = src_read(s, &extra, 1, &got); /* also makes zlib check the CRC */
    if (!st && got) st = sparq_fail(SPARQ_ERR_FORMAT, "%s: trailing data after %zu elements of %s", s->name, numel, type->name);
  }
  if (st) {
    sparq_free(buf);
    return st;
  }
  to_host(buf, numel, type);
  out->data = buf;
  out->dtype = type->dtype;
  out->ndim = ndim;
  return SPARQ_OK;
}

sparq_status sparq_idx_read_memory(const void *data, size_t size, const char *name, sparq_tensor *out) {
  if (!out) return sparq_fail(SPARQ_ERR_ARG, "sparq_idx_read: out is NULL");
  memset(out, 0, sizeof *out);
  if (!name) name = "(memory)";
  if (!data && size) return sparq_fail(SPARQ_ERR_ARG, "%s: data is NULL", name);
  idx_src s = {.name = name, .data = data, .size = size};
  s.gz = size >= 2 && s.data[0] == 0x1f && s.data[1] == 0x8b;
  if (s.gz) {
    /* 16 + MAX_WBITS: gzip wrapper only, so a zlib or raw stream is refused */
    int rc = inflateInit2(&s.z, 16 + MAX_WBITS);
    if (rc != Z_OK) return gz_fail(&s, rc);
    s.z_open = true;
  }
  sparq_status st = parse(&s, out);
  if (s.z_open) inflateEnd(&s.z);
  if (st) memset(out, 0, sizeof *out);
  return st;
}

sparq_status sparq_idx_read(const char *path, sparq_tensor *out) {
  if (!path) return sparq_fail(SPARQ_ERR_ARG, "sparq_idx_read: path is NULL");
  if (out) memset(out, 0, sizeof *out);
  io_map m;
  sparq_status st = io_map_open(path, &m);
  if (st) return st;
  st = sparq_idx_read_memory(m.data, m.size, path, out);
  io_map_close(&m);
  return st;
}
