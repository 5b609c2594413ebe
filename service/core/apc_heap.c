/*
 * apc_heap.c - the engine's intrusive min-heap of due times (see apc_heap.h).
 *
 * Thread safety: none; the owning thread only (the engine thread in the service).
 */
#include "apc_heap.h"

#include <stdlib.h>

#include "apc_error.h"

void apc_heap_node_init(apc_heap_node_t *node, void *owner)
{
    node->due = 0;
    node->seq = 0;
    node->index = APC_HEAP_NOT_IN;
    node->owner = owner;
}

int apc_heap_node_queued(const apc_heap_node_t *node)
{
    return node != NULL && node->index != APC_HEAP_NOT_IN;
}

/* Returns 1 if a sorts before b. */
static int before(const apc_heap_node_t *a, const apc_heap_node_t *b)
{
    if (a->due != b->due)
        return a->due < b->due;
    return a->seq < b->seq;
}

static void place(apc_heap_t *h, size_t i, apc_heap_node_t *n)
{
    h->items[i] = n;
    n->index = i;
}

static void sift_up(apc_heap_t *h, size_t i)
{
    apc_heap_node_t *n = h->items[i];

    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!before(n, h->items[parent]))
            break;
        place(h, i, h->items[parent]);
        i = parent;
    }
    place(h, i, n);
}

static void sift_down(apc_heap_t *h, size_t i)
{
    apc_heap_node_t *n = h->items[i];

    for (;;) {
        size_t l = 2 * i + 1;
        size_t best = l;
        if (l >= h->count)
            break;
        if (l + 1 < h->count && before(h->items[l + 1], h->items[l]))
            best = l + 1;
        if (!before(h->items[best], n))
            break;
        place(h, i, h->items[best]);
        i = best;
    }
    place(h, i, n);
}

/* Restores the heap property around position i after its key changed either way. */
static void fix(apc_heap_t *h, size_t i)
{
    if (i > 0 && before(h->items[i], h->items[(i - 1) / 2]))
        sift_up(h, i);
    else
        sift_down(h, i);
}

static int owns(const apc_heap_t *h, const apc_heap_node_t *node)
{
    return node->index < h->count && h->items[node->index] == node;
}

int apc_heap_push(apc_heap_t *h, apc_heap_node_t *node, int64_t due)
{
    if (h == NULL || node == NULL)
        return APC_EINVAL;
    if (node->index != APC_HEAP_NOT_IN) {
        if (!owns(h, node))
            return APC_EINVAL;
        return apc_heap_update(h, node, due);
    }
    if (h->count == h->cap) {
        /* Grow by half: the heap holds one node per job, so it is sized once at start. */
        size_t ncap = h->cap < 16 ? 16 : h->cap + h->cap / 2;
        apc_heap_node_t **items;
        if (ncap > (size_t)-1 / sizeof *items)
            return APC_ENOMEM;
        items = realloc(h->items, ncap * sizeof *items);
        if (items == NULL)
            return APC_ENOMEM;
        h->items = items;
        h->cap = ncap;
    }
    node->due = due;
    node->seq = h->next_seq++;
    h->items[h->count] = node;
    node->index = h->count;
    h->count++;
    sift_up(h, node->index);
    return 0;
}

int apc_heap_update(apc_heap_t *h, apc_heap_node_t *node, int64_t due)
{
    if (h == NULL || node == NULL || !owns(h, node))
        return APC_EINVAL;
    node->due = due;
    fix(h, node->index);
    return 0;
}

void apc_heap_remove(apc_heap_t *h, apc_heap_node_t *node)
{
    size_t i;
    apc_heap_node_t *last;

    if (h == NULL || node == NULL || !owns(h, node))
        return;
    i = node->index;
    node->index = APC_HEAP_NOT_IN;
    h->count--;
    if (i == h->count)
        return;
    last = h->items[h->count];
    place(h, i, last);
    fix(h, i);
}

apc_heap_node_t *apc_heap_top(const apc_heap_t *h)
{
    return (h == NULL || h->count == 0) ? NULL : h->items[0];
}

apc_heap_node_t *apc_heap_pop(apc_heap_t *h)
{
    apc_heap_node_t *top = apc_heap_top(h);

    if (top != NULL)
        apc_heap_remove(h, top);
    return top;
}

size_t apc_heap_count(const apc_heap_t *h)
{
    return h == NULL ? 0 : h->count;
}

int apc_heap_check(const apc_heap_t *h)
{
    size_t i;

    if (h == NULL)
        return 1;
    for (i = 0; i < h->count; i++) {
        if (h->items[i] == NULL || h->items[i]->index != i)
            return 0;
        if (i > 0 && before(h->items[i], h->items[(i - 1) / 2]))
            return 0;
    }
    return 1;
}

void apc_heap_free(apc_heap_t *h)
{
    size_t i;

    if (h == NULL)
        return;
    for (i = 0; i < h->count; i++)
        h->items[i]->index = APC_HEAP_NOT_IN;
    free(h->items);
    h->items = NULL;
    h->count = 0;
    h->cap = 0;
}
