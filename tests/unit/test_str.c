/*
 * test_str.c - apc_strdup and the growable buffer.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "apc_str.h"

static void strndup_copies_exactly_n_bytes(void **state)
{
    char *s = apc_strndup("schedule", 5);
    (void)state;
    assert_non_null(s);
    assert_string_equal(s, "sched");
    free(s);
    assert_null(apc_strdup(NULL));
}

static void buffer_grows_across_many_appends(void **state)
{
    apc_buf_t b = {0};
    char *s;
    (void)state;
    for (int i = 0; i < 1000; i++)
        apc_buf_printf(&b, "%d,", i % 10);
    assert_false(apc_buf_failed(&b));
    assert_int_equal(b.len, 2000);
    assert_memory_equal(b.data, "0,1,2,", 6);
    s = apc_buf_take(&b);
    assert_non_null(s);
    assert_int_equal(strlen(s), 2000);
    assert_null(b.data);
    free(s);
}

static void take_of_an_empty_buffer_is_an_empty_string(void **state)
{
    apc_buf_t b = {0};
    char *s;
    (void)state;
    s = apc_buf_take(&b);
    assert_non_null(s);
    assert_string_equal(s, "");
    free(s);
    apc_buf_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(strndup_copies_exactly_n_bytes),
        cmocka_unit_test(buffer_grows_across_many_appends),
        cmocka_unit_test(take_of_an_empty_buffer_is_an_empty_string),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
