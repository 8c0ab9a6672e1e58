/* NumPy .npy reader and writer (format versions 1.0, 2.0, 3.0).
 *
 * The header is a Python dict literal. numpy evaluates it with
 * ast.literal_eval; we accept the subset numpy writes plus the spellings a
 * hand-written or other-library header uses (either quote, any whitespace,
 * trailing commas, keys in any order) and nothing else: no escapes, no
 * nested values, no duplicate or unknown keys. */
#include <stdio.h>
#include <string.h>

#include "io/io_internal.h"

static const unsigned char npy_magic[6] = {0x93, 'N', 'U', 'M', 'P', 'Y'};

/* numpy's header padding rule: data starts at a multiple of 64 bytes. */
#define NPY_ALIGN 64
/* numpy leaves room after the dict so the first dimension can grow in place
 * (GROWTH_AXIS_MAX_DIGITS); we pad the same way to write identical bytes. */
#define NPY_GROWTH_DIGITS 21

typedef struct npy_dtype {
  const char *code; /* descr without the byte-order character */
  sparq_dtype dtype;
  bool one_byte;
} npy_dtype;

static const npy_dtype npy_dtypes[] = {
    {"f2", SPARQ_F16, false}, {"f4", SPARQ_F32, false}, {"f8", SPARQ_F64, false}, {"i1", SPARQ_I8, true},
    {"u1", SPARQ_U8, true},   {"i4", SPARQ_I32, false}, {"i8", SPARQ_I64, false}, {"b1", SPARQ_BOOL, true},
};

/* ------------------------------------------------------------ header parser */

typedef struct hp {
  const char *name; /* path for messages */
  const char *s;
  size_t n, i;
} hp;

static sparq_status hp_err(const hp *p, const char *what) {
  return sparq_fail(SPARQ_ERR_FORMAT, "%s: npy header: %s at byte %zu of the dict", p->name, what, p->i);
}

static void hp_ws(hp *p) {
  while (p->i < p->n && (p->s[p->i] == ' ' || p->s[p->i] == '\t' || p->s[p->i] == '\n' || p->s[p->i] == '\r')) p->i++;
}

static bool hp_eat(hp *p, char c) {
  hp_ws(p);
  if (p->i < p->n && p->s[p->i] == c) {
    p->i++;
    return true;
  }
  return false;
}

/* A quoted string without escapes; copied into buf (NUL-terminated). */
static sparq_status hp_string(hp *p, char *buf, size_t cap) {
  hp_ws(p);
  if (p->i >= p->n || (p->s[p->i] != '\'' && p->s[p->i] != '"')) return hp_err(p, "expected a quoted string");
  char q = p->s[p->i++];
  size_t start = p->i;
  while (p->i < p->n && p->s[p->i] != q) {
    unsigned char c = (unsigned char)p->s[p->i];
    if (c == '\\' || c < 0x20 || c >= 0x7f) return hp_err(p, "unsupported character in string");
    p->i++;
  }
  if (p->i >= p->n) return hp_err(p, "unterminated string");
  size_t len = p->i - start;
  p->i++;
  if (len >= cap) return hp_err(p, "string too long");
  memcpy(buf, p->s + start, len);
  buf[len] = '\0';
  return SPARQ_OK;
}

static bool hp_word(hp *p, const char *w) {
  hp_ws(p);
  size_t len = strlen(w);
  if (p->n - p->i < len || memcmp(p->s + p->i, w, len)) return false;
  /* the keyword must end here ("Falsey" is not False) */
  if (p->i + len < p->n) {
    char c = p->s[p->i + len];
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_') return false;
  }
  p->i += len;
  return true;
}

/* A non-negative decimal integer as Python writes it: no sign, no leading
 * zeros, no underscores, fits in int64. */
static sparq_status hp_int(hp *p, int64_t *out) {
  hp_ws(p);
  if (p->i < p->n && p->s[p->i] == '-') return hp_err(p, "negative dimension");
  size_t start = p->i;
  uint64_t v = 0;
  while (p->i < p->n && p->s[p->i] >= '0' && p->s[p->i] <= '9') {
    unsigned d = (unsigned)(p->s[p->i] - '0');
    if (v > ((uint64_t)INT64_MAX - d) / 10) return hp_err(p, "dimension too large");
    v = v * 10 + d;
    p->i++;
  }
  if (p->i == start) return hp_err(p, "expected a dimension");
  if (p->s[start] == '0' && p->i - start > 1) return hp_err(p, "dimension with a leading zero");
  *out = (int64_t)v;
  return SPARQ_OK;
}

/* "()" | "(" int "," ")" | "(" int ("," int)+ [","] ")" */
static sparq_status hp_shape(hp *p, sparq_tensor *t) {
  if (!hp_eat(p, '(')) return hp_err(p, "expected '(' to start the shape tuple");
  t->ndim = 0;
  if (hp_eat(p, ')')) return SPARQ_OK;
  for (;;) {
    int64_t d = 0;
    sparq_status st = hp_int(p, &d);
    if (st) return st;
    if (t->ndim == SPARQ_MAX_DIMS)
      return sparq_fail(SPARQ_ERR_UNSUPPORTED, "%s: npy shape has more than %d dimensions", p->name, SPARQ_MAX_DIMS);
    t->shape[t->ndim++] = d;
    bool comma = hp_eat(p, ',');
    if (hp_eat(p, ')')) {
      /* (3) is the integer 3 in Python, not a tuple */
      if (t->ndim == 1 && !comma) return hp_err(p, "shape (N) needs a trailing comma to be a tuple");
      return SPARQ_OK;
    }
    if (!comma) return hp_err(p, "expected ',' or ')' in the shape tuple");
  }
}

static sparq_status parse_descr(const char *name, const char *descr, sparq_dtype *out) {
  char order = descr[0];
  const char *code = descr + (order ? 1 : 0);
  for (size_t k = 0; k < sizeof npy_dtypes / sizeof npy_dtypes[0]; k++) {
    const npy_dtype *d = &npy_dtypes[k];
    if (strcmp(code, d->code)) continue;
    if (order == '<' || (order == '|' && d->one_byte)) {
      *out = d->dtype;
      return SPARQ_OK;
    }
    if (order == '>')
      return sparq_fail(SPARQ_ERR_UNSUPPORTED, "%s: big-endian data ('%s') is not supported; save it little-endian", name,
                        descr);
    break;
  }
  return sparq_fail(SPARQ_ERR_UNSUPPORTED,
                    "%s: unsupported npy dtype '%s' (supported: <f2 <f4 <f8 |i1 |u1 |b1 <i4 <i8)", name, descr);
}

static sparq_status parse_dict(hp *p, sparq_tensor *t) {
  enum { DESCR = 1, FORTRAN = 2, SHAPE = 4 };
  unsigned seen = 0;
  char descr[32];
  if (!hp_eat(p, '{')) return hp_err(p, "expected '{'");
  for (;;) {
    if (hp_eat(p, '}')) break;
    char key[32];
    sparq_status st = hp_string(p, key, sizeof key);
    if (st) return st;
    if (!hp_eat(p, ':')) return hp_err(p, "expected ':' after a key");
    unsigned bit = !strcmp(key, "descr") ? DESCR : !strcmp(key, "fortran_order") ? FORTRAN : !strcmp(key, "shape") ? SHAPE : 0;
    if (!bit) return sparq_fail(SPARQ_ERR_FORMAT, "%s: npy header has an unknown key '%s'", p->name, key);
    if (seen & bit) return sparq_fail(SPARQ_ERR_FORMAT, "%s: npy header repeats the key '%s'", p->name, key);
    seen |= bit;
    if (bit == DESCR) {
      hp_ws(p);
      if (p->i < p->n && p->s[p->i] == '[')
        return sparq_fail(SPARQ_ERR_UNSUPPORTED, "%s: structured npy dtypes are not supported", p->name);
      st = hp_string(p, descr, sizeof descr);
    } else if (bit == FORTRAN) {
      if (hp_word(p, "True"))
        return sparq_fail(SPARQ_ERR_UNSUPPORTED, "%s: fortran_order True (column-major) is not supported; save a C-order array",
                          p->name);
      if (!hp_word(p, "False")) st = hp_err(p, "fortran_order must be True or False");
    } else {
      st = hp_shape(p, t);
    }
    if (st) return st;
    if (hp_eat(p, '}')) break;
    if (!hp_eat(p, ',')) return hp_err(p, "expected ',' or '}'");
  }
  hp_ws(p);
  if (p->i != p->n) return hp_err(p, "unexpected text after the dict");
  if (seen != (DESCR | FORTRAN | SHAPE))
    return sparq_fail(SPARQ_ERR_FORMAT, "%s: npy header lacks the key '%s'", p->name,
                      !(seen & DESCR) ? "descr" : !(seen & FORTRAN) ? "fortran_order" : "shape");
  return parse_descr(p->name, descr, &t->dtype);
}

/* ------------------------------------------------------------------- read */

sparq_status sparq_npy_read_memory(const void *data, size_t size, const char *name, sparq_tensor *out) {
  if (!out) return sparq_fail(SPARQ_ERR_ARG, "sparq_npy_read: out is NULL");
  memset(out, 0, sizeof *out);
  if (!name) name = "(memory)";
  if (!data && size) return sparq_fail(SPARQ_ERR_ARG, "%s: data is NULL", name);
  const unsigned char *b = data;
  if (size < 10 || memcmp(b, npy_magic, 6))
    return sparq_fail(SPARQ_ERR_FORMAT, "%s: not an npy file (no \\x93NUMPY magic)", name);
  unsigned major = b[6], minor = b[7];
  if (major < 1 || major > 3 || minor != 0)
    return sparq_fail(SPARQ_ERR_UNSUPPORTED, "%s: npy format version %u.%u is not supported (1.0, 2.0, 3.0 are)", name, major,
                      minor);
  size_t prefix = major == 1 ? 10 : 12;
  if (size < prefix) return sparq_fail(SPARQ_ERR_FORMAT, "%s: truncated npy header length", name);
  size_t hlen = major == 1 ? io_le16(b + 8) : io_le32(b + 8);
  if (hlen > SPARQ_NPY_MAX_HEADER)
    return sparq_fail(SPARQ_ERR_FORMAT, "%s: npy header length %zu exceeds the %zu-byte limit", name, hlen,
                      (size_t)SPARQ_NPY_MAX_HEADER);
  if (hlen > size - prefix)
    return sparq_fail(SPARQ_ERR_FORMAT, "%s: npy header length %zu runs past the end of the file (%zu bytes)", name, hlen,
                      size);
  const unsigned char *h = b + prefix;
  /* 1.0/2.0 headers are latin-1 and 3.0 ones UTF-8, but a valid dict is
   * ASCII either way; check the encoding first for a clearer message. */
  if (major == 3 && !io_utf8_valid(h, hlen)) return sparq_fail(SPARQ_ERR_FORMAT, "%s: npy 3.0 header is not UTF-8", name);
  hp p = {.name = name, .s = (const char *)h, .n = hlen};
  sparq_status st = parse_dict(&p, out);
  if (st) {
    memset(out, 0, sizeof *out);
    return st;
  }
  size_t nbytes, avail = size - prefix - hlen;
  if (!sparq_tensor_nbytes(out, &nbytes)) st = sparq_fail(SPARQ_ERR_FORMAT, "%s: npy shape's byte size overflows", name);
  else if (nbytes > avail)
    st = sparq_fail(SPARQ_ERR_FORMAT, "%s: truncated: shape needs %zu data bytes, file has %zu", name, nbytes, avail);
  else if (nbytes < avail)
    st = sparq_fail(SPARQ_ERR_FORMAT, "%s: trailing data (%zu bytes) after the %zu data bytes", name, avail - nbytes, nbytes);
  if (st) {
    memset(out, 0, sizeof *out);
    return st;
  }
  /* never NULL, even for an empty array, so callers need no special case */
  out->data = sparq_alloc(nbytes ? nbytes : 1, name);
  if (!out->data) {
    memset(out, 0, sizeof *out);
    return SPARQ_ERR_NOMEM;
  }
  if (nbytes) memcpy(out->data, h + hlen, nbytes);
  return SPARQ_OK;
}

sparq_status sparq_npy_read(const char *path, sparq_tensor *out) {
  if (!path) return sparq_fail(SPARQ_ERR_ARG, "sparq_npy_read: path is NULL");
  if (out) memset(out, 0, sizeof *out);
  io_map m;
  sparq_status st = io_map_open(path, &m);
  if (st) return st;
  st = sparq_npy_read_memory(m.data, m.size, path, out);
  io_map_close(&m);
  return st;
}

/* ------------------------------------------------------------------ write */

sparq_status sparq_npy_write(const char *path, const sparq_tensor *t) {
  if (!path || !t) return sparq_fail(SPARQ_ERR_ARG, "sparq_npy_write: NULL argument");
  size_t nbytes;
  sparq_status st = io_check_tensor(path, "tensor", t, &nbytes);
  if (st) return st;
  const char *descr = NULL;
  for (size_t k = 0; k < sizeof npy_dtypes / sizeof npy_dtypes[0]; k++)
    if (npy_dtypes[k].dtype == t->dtype) descr = npy_dtypes[k].code;
  if (!descr)
    return sparq_fail(SPARQ_ERR_UNSUPPORTED, "%s: npy has no %s dtype", path, sparq_dtype_name(t->dtype));
  bool one_byte = sparq_dtype_size(t->dtype) == 1;

  /* Exactly numpy's _write_array_header + _wrap_header, so sparq and
   * numpy.save produce the same bytes for the same array. */
  char shape[SPARQ_MAX_DIMS * 22 + 8];
  size_t k = 0;
  shape[k++] = '(';
  for (int i = 0; i < t->ndim; i++)
    k += (size_t)snprintf(shape + k, sizeof shape - k, i ? ", %lld" : "%lld", (long long)t->shape[i]);
  if (t->ndim == 1) shape[k++] = ',';
  shape[k++] = ')';
  shape[k] = '\0';
  char dict[sizeof shape + 128 + NPY_GROWTH_DIGITS];
  int len = snprintf(dict, sizeof dict, "{'descr': '%c%s', 'fortran_order': False, 'shape': %s, }", one_byte ? '|' : '<',
                     descr, shape);
  if (t->ndim > 0) {
    int digits = snprintf(NULL, 0, "%lld", (long long)t->shape[0]);
    for (int i = digits; i < NPY_GROWTH_DIGITS; i++) dict[len++] = ' ';
  }
  size_t hlen = (size_t)len + 1; /* + the final '\n' */
  size_t prefix = 10;
  size_t pad = NPY_ALIGN - (prefix + hlen) % NPY_ALIGN;
  if (hlen + pad > 65535) {
    prefix = 12; /* version 2.0: 4-byte header length */
    pad = NPY_ALIGN - (prefix + hlen) % NPY_ALIGN;
  }
  unsigned char head[12 + sizeof dict + NPY_ALIGN + 1];
  memcpy(head, npy_magic, 6);
  head[6] = prefix == 10 ? 1 : 2;
  head[7] = 0;
  size_t total_h = hlen + pad;
  for (size_t i = 0; i < prefix - 8; i++) head[8 + i] = (unsigned char)(total_h >> (8 * i));
  memcpy(head + prefix, dict, (size_t)len);
  memset(head + prefix + len, ' ', pad);
  head[prefix + total_h - 1] = '\n';

  sparq_atomic_file f;
  st = sparq_atomic_open(&f, path);
  if (!st) st = sparq_atomic_write(&f, head, prefix + total_h);
  if (!st && nbytes) st = sparq_atomic_write(&f, t->data, nbytes);
  if (!st) st = sparq_atomic_commit(&f);
  return st;
}
