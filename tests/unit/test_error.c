/*
 * test_error.c - the APC_E* list, its texts and the caller-buffer formatter.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "apc_error.h"

static void every_code_has_a_distinct_name_and_text(void **state)
{
    (void)state;
    for (int e = APC_EFIRST_ + 1; e < APC_ELAST_; e++) {
        assert_string_not_equal(apc_strerror(e), "unknown error");
        assert_string_not_equal(apc_errname(e), "EUNKNOWN");
        for (int f = e + 1; f < APC_ELAST_; f++)
            assert_string_not_equal(apc_errname(e), apc_errname(f));
    }
    assert_string_equal(apc_errname(APC_EINVAL), "EINVAL");
    assert_string_equal(apc_strerror(APC_OK), "success");
    assert_string_equal(apc_strerror(12345), "unknown error");
}

static void seterr_truncates_and_returns_the_code(void **state)
{
    char buf[8];
    (void)state;
    assert_int_equal(apc_seterr(buf, sizeof buf, APC_ERANGE, "field %s", "minute"), APC_ERANGE);
    assert_string_equal(buf, "field m");
    assert_int_equal(apc_seterr(NULL, 0, APC_EIO, "x"), APC_EIO);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(every_code_has_a_distinct_name_and_text),
        cmocka_unit_test(seterr_truncates_and_returns_the_code),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
