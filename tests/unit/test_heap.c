/*
 * test_heap.c - the engine's intrusive min-heap of due times (apc_heap.h).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>

#include "apc_error.h"
#include "apc_heap.h"

/* A caller struct with an embedded node, as the engine's jobs and runs have. */
typedef struct item {
    int id;
    apc_heap_node_t node;
} item_t;

static void init_items(item_t *items, int n)
{
    for (int i = 0; i < n; i++) {
        items[i].id = i;
        apc_heap_node_init(&items[i].node, &items[i]);
    }
}

static int pop_id(apc_heap_t *h)
{
    apc_heap_node_t *n = apc_heap_pop(h);
    return n == NULL ? -1 : ((item_t *)n->owner)->id;
}

static void pops_in_due_order(void **state)
{
    apc_heap_t h = {0};
    item_t items[5];
    const int64_t due[5] = {500, 100, 400, 200, 300};
    (void)state;
    init_items(items, 5);
    for (int i = 0; i < 5; i++)
        assert_int_equal(apc_heap_push(&h, &items[i].node, due[i]), 0);
    assert_int_equal(apc_heap_count(&h), 5);
    assert_int_equal(((item_t *)apc_heap_top(&h)->owner)->id, 1);
    assert_int_equal(pop_id(&h), 1);
    assert_int_equal(pop_id(&h), 3);
    assert_int_equal(pop_id(&h), 4);
    assert_int_equal(pop_id(&h), 2);
    assert_int_equal(pop_id(&h), 0);
    assert_int_equal(pop_id(&h), -1);
    assert_false(apc_heap_node_queued(&items[0].node));
    apc_heap_free(&h);
}

static void equal_due_times_pop_first_in_first_out(void **state)
{
    apc_heap_t h = {0};
    item_t items[4];
    (void)state;
    init_items(items, 4);
    for (int i = 0; i < 4; i++)
        assert_int_equal(apc_heap_push(&h, &items[i].node, 1000), 0);
    for (int i = 0; i < 4; i++)
        assert_int_equal(pop_id(&h), i);
    apc_heap_free(&h);
}

static void update_moves_a_node_both_ways(void **state)
{
    apc_heap_t h = {0};
    item_t items[3];
    (void)state;
    init_items(items, 3);
    apc_heap_push(&h, &items[0].node, 10);
    apc_heap_push(&h, &items[1].node, 20);
    apc_heap_push(&h, &items[2].node, 30);
    assert_int_equal(apc_heap_update(&h, &items[2].node, 5), 0);
    assert_int_equal(((item_t *)apc_heap_top(&h)->owner)->id, 2);
    assert_int_equal(apc_heap_update(&h, &items[2].node, 50), 0);
    assert_int_equal(pop_id(&h), 0);
    assert_int_equal(pop_id(&h), 1);
    assert_int_equal(pop_id(&h), 2);
    apc_heap_free(&h);
}

static void push_of_a_queued_node_changes_its_due_time(void **state)
{
    apc_heap_t h = {0};
    item_t items[2];
    (void)state;
    init_items(items, 2);
    apc_heap_push(&h, &items[0].node, 10);
    apc_heap_push(&h, &items[1].node, 20);
    assert_int_equal(apc_heap_push(&h, &items[0].node, 30), 0);
    assert_int_equal(apc_heap_count(&h), 2);
    assert_int_equal(pop_id(&h), 1);
    assert_int_equal(pop_id(&h), 0);
    apc_heap_free(&h);
}

static void remove_takes_out_any_node_and_ignores_unqueued_ones(void **state)
{
    apc_heap_t h = {0};
    item_t items[6];
    (void)state;
    init_items(items, 6);
    for (int i = 0; i < 6; i++)
        apc_heap_push(&h, &items[i].node, (int64_t)(6 - i) * 10);
    apc_heap_remove(&h, &items[5].node); /* the top */
    apc_heap_remove(&h, &items[2].node); /* a middle one */
    apc_heap_remove(&h, &items[2].node); /* again: a no-op */
    assert_true(apc_heap_check(&h));
    assert_int_equal(apc_heap_count(&h), 4);
    assert_false(apc_heap_node_queued(&items[2].node));
    assert_int_equal(pop_id(&h), 4);
    assert_int_equal(pop_id(&h), 3);
    assert_int_equal(pop_id(&h), 1);
    assert_int_equal(pop_id(&h), 0);
    apc_heap_free(&h);
}

static void update_of_an_unqueued_node_is_refused(void **state)
{
    apc_heap_t h = {0};
    item_t it;
    (void)state;
    init_items(&it, 1);
    assert_int_equal(apc_heap_update(&h, &it.node, 1), APC_EINVAL);
    assert_int_equal(apc_heap_push(NULL, &it.node, 1), APC_EINVAL);
    assert_null(apc_heap_pop(&h));
    apc_heap_free(&h);
    apc_heap_free(NULL);
}

/* A reproducible pseudo-random sequence, so a failure can be replayed exactly. */
static uint64_t next_rand(uint64_t *s)
{
    *s = *s * 6364136223846793005u + 1442695040888963407u;
    return *s >> 33;
}

static void random_pushes_updates_and_removes_keep_the_heap_sorted(void **state)
{
    enum { N = 2000 };
    apc_heap_t h = {0};
    item_t *items = calloc(N, sizeof *items);
    uint64_t seed = 42;
    int64_t last = INT64_MIN;
    size_t popped = 0;
    (void)state;
    assert_non_null(items);
    init_items(items, N);
    for (int i = 0; i < N; i++)
        assert_int_equal(apc_heap_push(&h, &items[i].node, (int64_t)(next_rand(&seed) % 100000)),
                         0);
    for (int i = 0; i < N; i += 3)
        assert_int_equal(apc_heap_update(&h, &items[i].node, (int64_t)(next_rand(&seed) % 100000)),
                         0);
    for (int i = 1; i < N; i += 7)
        apc_heap_remove(&h, &items[i].node);
    assert_true(apc_heap_check(&h));
    while (apc_heap_count(&h) > 0) {
        apc_heap_node_t *n = apc_heap_pop(&h);
        assert_true(n->due >= last);
        last = n->due;
        popped++;
    }
    assert_int_equal(popped, N - (N + 5) / 7);
    apc_heap_free(&h);
    free(items);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(pops_in_due_order),
        cmocka_unit_test(equal_due_times_pop_first_in_first_out),
        cmocka_unit_test(update_moves_a_node_both_ways),
        cmocka_unit_test(push_of_a_queued_node_changes_its_due_time),
        cmocka_unit_test(remove_takes_out_any_node_and_ignores_unqueued_ones),
        cmocka_unit_test(update_of_an_unqueued_node_is_refused),
        cmocka_unit_test(random_pushes_updates_and_removes_keep_the_heap_sorted),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
