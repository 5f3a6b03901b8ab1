/* A binary heap of fixed-size items in a caller-owned array (the caller sizes
 * it; nothing here allocates). before(a, b) != 0 means a pops before b; for
 * a deterministic order it must be a strict total order on the items in use.
 * Used by the tokenizers' merge queues. */
#ifndef LS_HEAP_H
#define LS_HEAP_H

#include <stddef.h>

typedef int (*ls_heap_before)(const void *a, const void *b);

/* Adds *item; items must have room for *n + 1 items. */
void ls_heap_push(void *items, int *n, size_t size, const void *item, ls_heap_before before);
/* Removes the first item into *top; *n must be > 0. */
void ls_heap_pop(void *items, int *n, size_t size, void *top, ls_heap_before before);

#endif
