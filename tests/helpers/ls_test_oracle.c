#include "ls_test_oracle.h"

#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "ls_test.h"

/* The integers of array `key` of the oracle at path, malloc'd. */
static int *ids(const json_t *root, const char *key, const char *path, int *n) {
  json_t *a = json_object_get(root, key);
  ck_assert_msg(json_is_array(a), "%s: %s is not an array", path, key);
  *n = (int)json_array_size(a);
  int *v = malloc(sizeof(int) * (size_t)*n + 1);
  ck_assert_ptr_nonnull(v);
  for (int i = 0; i < *n; i++) {
    json_t *x = json_array_get(a, (size_t)i);
    ck_assert_msg(json_is_integer(x), "%s: %s[%d] is not an integer", path, key, i);
    v[i] = (int)json_integer_value(x);
  }
  return v;
}

void ls_test_oracle_load(ls_test_oracle *o, const char *dir, const char *name) {
  char path[4096];
  json_error_t je;
  snprintf(path, sizeof path, "%s/%s.json", dir, name);
  o->root = json_load_file(path, 0, &je);
  ck_assert_msg(o->root != NULL, "%s: %s", path, je.text);
  json_t *nv = json_object_get(o->root, "n_vocab");
  ck_assert_msg(json_is_integer(nv) && json_integer_value(nv) > 0, "%s: n_vocab", path);
  o->n_vocab = (int)json_integer_value(nv);
  o->seq = ids(o->root, "seq_tokens", path, &o->n_seq);
  o->prompt = ids(o->root, "prompt_tokens", path, &o->n_prompt);
  o->greedy = ids(o->root, "greedy_tokens", path, &o->n_greedy);
  snprintf(path, sizeof path, "%s/%s.seq.f32", dir, name);
  o->seq_logits = ls_test_read_f32(path, (size_t)o->n_seq * (size_t)o->n_vocab);
  snprintf(path, sizeof path, "%s/%s.greedy.f32", dir, name);
  struct stat st;
  o->greedy_logits = stat(path, &st) == 0 ? ls_test_read_f32(path, (size_t)o->n_greedy * (size_t)o->n_vocab) : NULL;
}

void ls_test_oracle_free(ls_test_oracle *o) {
  json_decref(o->root);
  free(o->seq);
  free(o->prompt);
  free(o->greedy);
  free(o->seq_logits);
  free(o->greedy_logits);
}
