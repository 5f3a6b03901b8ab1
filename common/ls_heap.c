#include "ls_heap.h"

#include <string.h>

#define AT(i) ((char *)items + (size_t)(i) * size)

void ls_heap_push(void *items, int *n, size_t size, const void *item, ls_heap_before before) {
  int i = (*n)++;
  while (i > 0 && before(item, AT((i - 1) / 2))) { /* move parents down into the hole */
    memcpy(AT(i), AT((i - 1) / 2), size);
    i = (i - 1) / 2;
  }
  memcpy(AT(i), item, size);
}

void ls_heap_pop(void *items, int *n, size_t size, void *top, ls_heap_before before) {
  memcpy(top, AT(0), size);
  const char *last = AT(--(*n)); /* stays in place: the holes filled below are all < *n */
  int i = 0;
  for (;;) {
    int c = 2 * i + 1;
    if (c >= *n) break;
    if (c + 1 < *n && before(AT(c + 1), AT(c))) c++;
    if (!before(AT(c), last)) break;
    memcpy(AT(i), AT(c), size);
    i = c;
  }
  if (*n > 0) memcpy(AT(i), last, size);
}
