/* ls_heap: items pop in the comparator's order (ties broken by a second key,
 * as the tokenizers do), interleaved pushes and pops agree with a sorted
 * reference, and items of odd sizes are copied whole. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "ls_heap.h"
#include "ls_test.h"

typedef struct item {
  float key;
  int pos;
  char tag[5]; /* odd size: the heap copies size bytes, not a word */
} item;

static int item_before(const void *x, const void *y) {
  const item *a = x, *b = y;
  return a->key > b->key || (a->key == b->key && a->pos < b->pos);
}

static int cmp_items(const void *x, const void *y) { return item_before(x, y) ? -1 : item_before(y, x) ? 1 : 0; }

START_TEST(pops_in_order) {
  unsigned s = 7;
  enum { N = 2000 };
  item *heap = malloc(N * sizeof *heap), *all = malloc(N * sizeof *all), *live = malloc(N * sizeof *live);
  int n_heap = 0, n_all = 0, n_live = 0;
  for (int round = 0; round < 3 * N; round++) {
    s = s * 1103515245u + 12345u;
    if (n_heap == 0 && n_all == N) break;
    int push = n_heap == 0 || (n_all < N && (s >> 16) % 3 != 0);
    if (push) {
      item it = {(float)((s >> 8) % 7), n_all, "abcd"};
      it.tag[0] = (char)('a' + n_all % 26);
      all[n_all++] = it;
      live[n_live++] = it;
      ls_heap_push(heap, &n_heap, sizeof it, &it, item_before);
    } else {
      qsort(live, (size_t)n_live, sizeof *live, cmp_items);
      item top;
      ls_heap_pop(heap, &n_heap, sizeof top, &top, item_before);
      ck_assert_msg(top.pos == live[0].pos && top.key == live[0].key, "popped %d (%g), want %d (%g)", top.pos,
                    top.key, live[0].pos, live[0].key);
      ck_assert_int_eq(top.tag[0], 'a' + top.pos % 26);
      ck_assert_str_eq(top.tag + 1, "bcd");
      memmove(live, live + 1, (size_t)--n_live * sizeof *live);
    }
    ck_assert_int_eq(n_heap, n_live);
  }
  /* drain: the rest comes out sorted */
  qsort(live, (size_t)n_live, sizeof *live, cmp_items);
  for (int i = 0; n_heap > 0; i++) {
    item top;
    ls_heap_pop(heap, &n_heap, sizeof top, &top, item_before);
    ck_assert_int_eq(top.pos, live[i].pos);
  }
  free(heap);
  free(all);
  free(live);
}
END_TEST

int main(void) {
  Suite *s = suite_create("heap");
  TCase *tc = tcase_create("heap");
  tcase_add_test(tc, pops_in_order);
  suite_add_tcase(s, tc);
  return ls_test_run(s);
}
