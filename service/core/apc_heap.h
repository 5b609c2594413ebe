/*
 * apc_heap.h - an intrusive binary min-heap of due times: the engine's timer queue.
 *
 * Why this way: the engine holds one node per scheduled job (its next fire time) and one
 * per delayed run (a retry after its backoff, a submit with --at). It must find the earliest
 * due time in O(1) to arm its ONE waitable timer, and move or remove a node in O(log n) when a
 * job is paused, reloaded or a run is cancelled. The node lives inside the caller's struct and
 * remembers its own position, so there is no allocation per node and no search on removal.
 * Ties on `due` are broken by a sequence number given at insertion (first in, first out), so
 * the order is deterministic and stable across platforms.
 *
 * Thread safety: none; a heap belongs to one thread (the engine thread).
 */
#ifndef APC_HEAP_H
#define APC_HEAP_H

#include <stddef.h>
#include <stdint.h>

/* Position of a node that is not in any heap. */
#define APC_HEAP_NOT_IN ((size_t)-1)

/*
 * A heap node, embedded in the caller's struct. Initialise it with apc_heap_node_init before
 * first use. `owner` is the caller's own pointer (the struct the node is in), handed back by
 * apc_heap_top; the heap never looks at it.
 */
typedef struct apc_heap_node {
    int64_t due;  /* the key: Unix ms UTC */
    uint64_t seq; /* tie breaker, set by apc_heap_push */
    size_t index; /* position in the heap, APC_HEAP_NOT_IN when not in a heap */
    void *owner;  /* the caller's struct */
} apc_heap_node_t;

typedef struct apc_heap {
    apc_heap_node_t **items;
    size_t count;
    size_t cap;
    uint64_t next_seq;
} apc_heap_t;

/* Makes node an unqueued node that belongs to owner. */
void apc_heap_node_init(apc_heap_node_t *node, void *owner);

/* Returns 1 if node is currently in a heap. */
int apc_heap_node_queued(const apc_heap_node_t *node);

/*
 * Inserts node with key due. If the node is already in h it is moved to the new due time
 * instead (same as apc_heap_update). Returns 0, APC_EINVAL for NULL arguments or a node that
 * belongs to another heap position out of range, or APC_ENOMEM (h and node unchanged).
 */
int apc_heap_push(apc_heap_t *h, apc_heap_node_t *node, int64_t due);

/*
 * Changes the due time of a node that is in h, keeping its sequence number (so equal due
 * times keep their original order). Returns 0 or APC_EINVAL if node is not in h.
 */
int apc_heap_update(apc_heap_t *h, apc_heap_node_t *node, int64_t due);

/* Removes node from h if it is there (a no-op otherwise). */
void apc_heap_remove(apc_heap_t *h, apc_heap_node_t *node);

/* Returns the node with the smallest (due, seq), or NULL if h is empty. It stays in h. */
apc_heap_node_t *apc_heap_top(const apc_heap_t *h);

/* Removes and returns the top node, or NULL if h is empty. */
apc_heap_node_t *apc_heap_pop(apc_heap_t *h);

/* Returns the number of nodes in h. */
size_t apc_heap_count(const apc_heap_t *h);

/*
 * Checks the heap property and every node's index; returns 1 if the heap is consistent.
 * For tests and asserts (O(n)).
 */
int apc_heap_check(const apc_heap_t *h);

/* Releases the heap's array (not the nodes, which the caller owns; they are marked not
   queued) and leaves h empty and reusable. Accepts NULL. */
void apc_heap_free(apc_heap_t *h);

#endif /* APC_HEAP_H */
