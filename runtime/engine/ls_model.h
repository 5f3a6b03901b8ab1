/* A loaded Llama-architecture model: its shape, its weights (pointers into the
 * memory-mapped file wherever the file's layout allows) and its vocabulary.
 * Loaders: ls_model_load() dispatches on the file's magic to the GGUF reader
 * (gguf.c) or the llama2.c reader (llama2c.c). */
#ifndef LS_MODEL_H
#define LS_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "ls_error.h"
#include "ls_quant.h"

/* Architectures (GGUF general.architecture). */
typedef enum { LS_ARCH_LLAMA = 0, LS_ARCH_QWEN2 = 1 } ls_arch;

typedef struct ls_config {
  int arch;       /* ls_arch */
  int dim;        /* embedding length */
  int hidden_dim; /* feed-forward length */
  int n_layers;
  int n_heads;
  int n_kv_heads;
  int head_dim;   /* dim / n_heads */
  int vocab_size;
  int seq_len;    /* context length the model was trained for */
  int rope_dim;   /* rotated dimensions per head (== head_dim for llama) */
  float rope_theta;
  float rope_freq_scale; /* positions scale by this (linear rope scaling); 0 means 1 */
  int rope_neox;  /* rotate (x[i], x[i + rope_dim/2]) (qwen2) instead of (x[2i], x[2i+1]) (llama) */
  float norm_eps;
} ls_config;

/* How a matrix's bytes are laid out.
 * ROWS: row r at data + r*row_bytes, as the file has it.
 * X16 (Q8_0, Q4_0 and Q4_K; written by a kernel level's `pack`, kernels.h):
 *   rows in groups of 16, group g at data + 16g*row_bytes (the same bytes
 *   per group as ROWS). Block b of a group: the 16 rows' heads (Q8_0 and
 *   Q4_0: the fp16 scale, 16 x 2 bytes; Q4_K: d, dmin and the 12 bytes of
 *   scales and mins, 16 x 16), then their quants 4 bytes of a row at a
 *   time: bytes 4k..4k+3 of row i at 16 * head + 64k + 4i (Q8_0: 8 x 64
 *   bytes; Q4_0: the packed nibble bytes, 4 x 64; Q4_K: 32 x 64). A whole
 *   block of 16 rows is one contiguous read and the operand AMX tiles,
 *   VNNI lanes and AVX2 octs take as it is (ls_x16_head_at,
 *   ls_x16_quant_at in kernels.h). Rows after the last whole group stay as
 *   ROWS. The amx level leaves Q4_K as ROWS (its tiles read rows). */
typedef enum { LS_LAYOUT_ROWS = 0, LS_LAYOUT_X16 = 1 } ls_layout;
#define LS_X16_ROWS 16

/* A weight matrix as stored: `rows` rows of `cols` elements of `type`, each
 * row `row_bytes` long, laid out as `layout` says (ROWS: row major). y = W x
 * maps cols -> rows. (GGUF lists dims fastest first, so GGUF ne = [cols,
 * rows].) */
typedef struct ls_mat {
  uint32_t type; /* ls_dtype */
  int64_t rows, cols;
  size_t row_bytes;
  const void *data;
  uint32_t layout; /* ls_layout */
} ls_mat;

typedef struct ls_layer {
  const float *attn_norm; /* [dim] */
  const float *bq, *bk, *bv; /* Q/K/V biases (qwen2), or NULL */
  ls_mat wq;              /* [n_heads*head_dim rows, dim cols] */
  ls_mat wk;              /* [n_kv_heads*head_dim, dim] */
  ls_mat wv;              /* [n_kv_heads*head_dim, dim] */
  ls_mat wo;              /* [dim, n_heads*head_dim] */
  const float *ffn_norm;  /* [dim] */
  ls_mat w_gate;          /* [hidden_dim, dim]  (llama2.c w1) */
  ls_mat w_up;            /* [hidden_dim, dim]  (llama2.c w3) */
  ls_mat w_down;          /* [dim, hidden_dim]  (llama2.c w2) */
} ls_layer;

/* Token kinds, as GGUF's tokenizer.ggml.token_type numbers them. */
enum { LS_TOK_NORMAL = 1, LS_TOK_UNKNOWN = 2, LS_TOK_CONTROL = 3, LS_TOK_USER = 4, LS_TOK_UNUSED = 5, LS_TOK_BYTE = 6 };

/* Tokenizer kinds (GGUF tokenizer.ggml.model): SentencePiece "llama" and
 * byte-level BPE "gpt2". */
typedef enum { LS_VOCAB_SPM = 0, LS_VOCAB_BPE = 1 } ls_vocab_kind;

/* Byte-level BPE pre-tokenizers (GGUF tokenizer.ggml.pre), named as llama.cpp
 * names them; runtime/text/bpe.c says what each splits. */
typedef enum {
  LS_PRE_DEFAULT = 0, /* "default" or no tokenizer.ggml.pre */
  LS_PRE_GPT2,        /* "gpt-2" */
  LS_PRE_LLAMA3,      /* "llama-bpe", "llama3", "llama-v3" */
  LS_PRE_QWEN2,       /* "qwen2", "deepseek-r1-qwen" */
  LS_PRE_SMOLLM,      /* "smollm", "starcoder" (the same splits) */
} ls_pre_kind;

/* The vocabulary as loaded. SentencePiece token text uses a plain ' ' for the
 * U+2581 word marker (the loaders convert), as llama2.c's tokenizer.bin does;
 * BPE token text is kept as the file has it (bytes mapped to printable code
 * points, GPT-2 style). */
typedef struct ls_vocab {
  int n_tokens;
  char **tokens;   /* [n_tokens] NUL-terminated */
  float *scores;   /* [n_tokens] merge priorities (SentencePiece) */
  int32_t *types;  /* [n_tokens] LS_TOK_* */
  int bos_id, eos_id, unk_id;
  int eot_id;      /* end of turn (e.g. <|eot_id|>, <|im_end|>), or -1 */
  int max_token_len;
  int add_bos;     /* prepend BOS when encoding a prompt */
  int add_eos;     /* append EOS when encoding a prompt */
  int add_space_prefix; /* prepend a space to non-empty text (SentencePiece) */
  int kind;        /* ls_vocab_kind */
  int pre;         /* ls_pre_kind (BPE only) */
  char pre_name[32];  /* tokenizer.ggml.pre as the file has it ("" if none) */
  /* BPE merges: merge r (rank r) is the NUL-terminated "left right" string at
   * merge_text + merge_off[r]; the split is the first space after byte 0. */
  int n_merges;
  char *merge_text;
  uint32_t *merge_off;
} ls_vocab;

typedef enum { LS_FMT_GGUF = 1, LS_FMT_LLAMA2C = 2 } ls_model_format;

typedef struct ls_model {
  ls_config cfg;
  ls_mat tok_embd;        /* [vocab rows, dim cols] */
  ls_layer *layers;       /* [n_layers] */
  const float *out_norm;  /* [dim] */
  ls_mat output;          /* [vocab, dim]; same data as tok_embd when tied */
  const float *rope_freqs; /* [rope_dim/2] frequency divisors (Llama 3 rope scaling), or NULL */
  int tied_output;
  ls_vocab vocab;         /* n_tokens == 0 if the file has none */

  ls_model_format format;
  char path[1024];
  char name[256];         /* general.name or the file's base name */
  uint32_t gguf_version;  /* 0 for llama2.c */
  size_t file_size;
  size_t weight_bytes;    /* bytes of all weight tensors */

  /* ownership: the mapping and any buffers the loader had to create */
  int weights_copied;     /* tensors point into an anonymous huge-page copy of the mapping */
  void *map;
  size_t map_size;
  void **owned;
  int n_owned, cap_owned;
} ls_model;

/* Loads a model file (GGUF by magic, otherwise llama2.c). For a llama2.c
 * checkpoint, tokenizer_path names its tokenizer.bin (NULL: no vocabulary);
 * for GGUF a non-NULL tokenizer_path replaces the embedded vocabulary. */
int ls_model_load(ls_model *m, const char *path, const char *tokenizer_path, ls_err *err);

/* Where the weights of a memory-mapped file live after loading.
 * COPY: copied into anonymous memory advised for transparent huge pages (the
 * file mapping's 4 KiB page-cache pages read ~20% slower per core and miss
 * the TLB; decode streams every weight per token). MAP: the file mapping
 * itself, shared through the page cache by every process that maps the file
 * (MPI ranks on one node; commands that only read the weights once). AUTO:
 * $LS_WEIGHTS=map|copy if set, else COPY when MemAvailable leaves at least
 * 1 GiB besides the copy, else MAP. */
typedef enum { LS_WEIGHTS_AUTO = 0, LS_WEIGHTS_MAP = 1, LS_WEIGHTS_COPY = 2 } ls_weights_place;
/* ls_model_load with a placement (ls_model_load is LS_WEIGHTS_AUTO). */
int ls_model_load_placed(ls_model *m, const char *path, const char *tokenizer_path, ls_weights_place place,
                         ls_err *err);
/* Copies the mapping into anonymous huge-page memory and moves every tensor
 * pointer there, dropping each copied piece from this process's mapping
 * (peak RSS: one copy plus a 32 MiB piece). No-op without a mapping. */
int ls_model_copy_weights(ls_model *m, ls_err *err);
void ls_model_free(ls_model *m);

/* Format-specific loaders (used by ls_model_load). */
int ls_model_load_gguf(ls_model *m, const char *path, ls_err *err);
int ls_model_load_llama2c(ls_model *m, const char *path, ls_err *err);
int ls_vocab_load_tokenizer_bin(ls_vocab *v, const char *path, int vocab_size, ls_err *err);
/* Only the vocabulary of a GGUF (tokenizer.ggml.*), e.g. a vocab-only file. */
int ls_vocab_load_gguf(ls_vocab *v, const char *path, ls_err *err);
/* "SentencePiece" / "BPE", and the pre-tokenizer's name ("" for SentencePiece). */
const char *ls_vocab_kind_name(const ls_vocab *v);
void ls_vocab_free(ls_vocab *v);

/* Memory-maps a whole regular, non-empty file read-only (munmap to release). */
int ls_map_file(const char *path, void **data, size_t *size, ls_err *err);

/* Helpers for loaders: memory-map a whole file read-only; remember a buffer
 * that ls_model_free() releases. */
int ls_model_map_file(ls_model *m, const char *path, ls_err *err);
int ls_model_own(ls_model *m, void *buf, ls_err *err);
/* Checks the shape in cfg is sane (positive, divisible, not absurd). */
int ls_config_validate(const ls_config *c, const char *path, ls_err *err);

#endif
