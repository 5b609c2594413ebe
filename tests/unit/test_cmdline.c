/*
 * test_cmdline.c - the Windows command-line builder and its CRT parser.
 *
 * Exact strings pin the builder's output; round trips through the parser
 * (which follows the UCRT rules) prove that the child sees exactly the argv
 * we meant, including a property test over thousands of random argv.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apc_cmdline.h"
#include "apc_error.h"

/* Builds argv and checks the exact command line. */
static void expect_line(const char *const *argv, const char *want)
{
    apc_buf_t b = {0};
    char err[200] = "";
    int rc = apc_cmdline_build(argv, &b, err, sizeof err);
    if (rc != 0)
        fail_msg("build failed: %s", err);
    assert_string_equal(b.data, want);
    apc_buf_free(&b);
}

/* Parses a line and checks the exact argv. */
static void expect_argv(const char *line, const char *const *want)
{
    char **argv = NULL;
    size_t argc = 0, n = 0;
    assert_int_equal(apc_cmdline_parse(line, &argv, &argc, NULL, 0), 0);
    while (want[n] != NULL)
        n++;
    assert_int_equal(argc, n);
    for (size_t i = 0; i < n; i++)
        assert_string_equal(argv[i], want[i]);
    assert_null(argv[argc]);
    apc_cmdline_free(argv);
}

/* Builds, parses back, and checks the argv survived. */
static void round_trip(const char *const *argv)
{
    apc_buf_t b = {0};
    char err[200] = "";
    int rc = apc_cmdline_build(argv, &b, err, sizeof err);
    if (rc != 0)
        fail_msg("build failed: %s", err);
    expect_argv(b.data, argv);
    apc_buf_free(&b);
}

static void plain_arguments_are_not_quoted(void **state)
{
    const char *argv[] = {"C:\\tools\\backup.exe", "--full", "D:\\data", NULL};
    (void)state;
    expect_line(argv, "C:\\tools\\backup.exe --full D:\\data");
}

static void spaces_and_tabs_are_quoted(void **state)
{
    const char *argv[] = {"C:\\Program Files\\x.exe", "a b", "c\td", NULL};
    (void)state;
    expect_line(argv, "\"C:\\Program Files\\x.exe\" \"a b\" \"c\td\"");
    round_trip(argv);
}

static void empty_argument_becomes_two_quotes(void **state)
{
    const char *argv[] = {"x.exe", "", "b", "", NULL};
    (void)state;
    expect_line(argv, "x.exe \"\" b \"\"");
    round_trip(argv);
}

static void quotes_are_escaped_with_a_backslash(void **state)
{
    const char *argv[] = {"x.exe", "say \"hi\"", "a\"b", NULL};
    (void)state;
    expect_line(argv, "x.exe \"say \\\"hi\\\"\" a\\\"b");
    round_trip(argv);
}

static void backslashes_before_a_quote_are_doubled_plus_one(void **state)
{
    /* a\"b -> a\\\"b ; a\\"b -> a\\\\\"b */
    const char *argv[] = {"x.exe", "a\\\"b", "a\\\\\"b", NULL};
    (void)state;
    expect_line(argv, "x.exe a\\\\\\\"b a\\\\\\\\\\\"b");
    round_trip(argv);
}

static void trailing_backslashes_are_doubled_only_when_quoted(void **state)
{
    const char *argv[] = {"x.exe", "C:\\dir\\", "C:\\my dir\\", "C:\\two\\\\", NULL};
    (void)state;
    expect_line(argv, "x.exe C:\\dir\\ \"C:\\my dir\\\\\" C:\\two\\\\");
    round_trip(argv);
}

static void inner_backslashes_are_literal(void **state)
{
    const char *argv[] = {"x.exe", "\\\\server\\share\\a b", "a\\\\b", NULL};
    (void)state;
    expect_line(argv, "x.exe \"\\\\server\\share\\a b\" a\\\\b");
    round_trip(argv);
}

static void utf8_passes_through(void **state)
{
    const char *argv[] = {"C:\\Übung\\prog.exe", "h\xc3\xa9llo w\xc3\xb6rld",
                          "\xe6\x97\xa5\xe6\x9c\xac", "\xf0\x9f\x98\x80", NULL};
    (void)state;
    expect_line(argv, "C:\\Übung\\prog.exe \"h\xc3\xa9llo w\xc3\xb6rld\" \xe6\x97\xa5\xe6\x9c\xac "
                      "\xf0\x9f\x98\x80");
    round_trip(argv);
}

static void program_name_keeps_its_trailing_backslash(void **state)
{
    const char *argv[] = {"C:\\odd dir\\", "x", NULL};
    (void)state;
    expect_line(argv, "\"C:\\odd dir\\\" x");
    round_trip(argv);
}

static void program_with_a_quote_is_refused(void **state)
{
    const char *argv[] = {"C:\\a\"b.exe", "x", NULL};
    apc_buf_t b = {0};
    char err[200];
    (void)state;
    assert_int_equal(apc_cmdline_build(argv, &b, err, sizeof err), APC_EINVAL);
    assert_string_equal(err, "argv[0] contains '\"', which a Windows program path cannot hold");
    assert_int_equal(b.len, 0);
    apc_buf_free(&b);
}

static void empty_argv_and_empty_program_are_refused(void **state)
{
    const char *none[] = {NULL};
    const char *empty[] = {"", NULL};
    apc_buf_t b = {0};
    char err[200];
    (void)state;
    assert_int_equal(apc_cmdline_build(none, &b, err, sizeof err), APC_EINVAL);
    assert_string_equal(err, "argv is empty: a job needs a program");
    assert_int_equal(apc_cmdline_build(NULL, &b, err, sizeof err), APC_EINVAL);
    assert_int_equal(apc_cmdline_build(empty, &b, err, sizeof err), APC_EINVAL);
    assert_string_equal(err, "argv[0] (the program) is empty");
    apc_buf_free(&b);
}

static void build_appends_and_leaves_buffer_intact_on_error(void **state)
{
    const char *bad[] = {"run.bat", "a&b", NULL};
    const char *good[] = {"x.exe", "y", NULL};
    apc_buf_t b = {0};
    (void)state;
    apc_buf_puts(&b, "prefix:");
    assert_int_equal(apc_cmdline_build(bad, &b, NULL, 0), APC_EINVAL);
    assert_string_equal(b.data, "prefix:");
    assert_int_equal(apc_cmdline_build(good, &b, NULL, 0), 0);
    assert_string_equal(b.data, "prefix:x.exe y");
    apc_buf_free(&b);
}

static void batch_detection_follows_windows_name_rules(void **state)
{
    (void)state;
    assert_int_equal(apc_cmdline_is_batch("run.bat"), 1);
    assert_int_equal(apc_cmdline_is_batch("C:\\x\\RUN.CMD"), 1);
    assert_int_equal(apc_cmdline_is_batch("run.BaT"), 1);
    assert_int_equal(apc_cmdline_is_batch("run.bat."), 1);
    assert_int_equal(apc_cmdline_is_batch("run.bat . ."), 1);
    assert_int_equal(apc_cmdline_is_batch("run.cmd  "), 1);
    assert_int_equal(apc_cmdline_is_batch("run.bat::$DATA"), 1);
    assert_int_equal(apc_cmdline_is_batch("run.bat::$data."), 1);
    assert_int_equal(apc_cmdline_is_batch("run.bat.exe"), 0);
    assert_int_equal(apc_cmdline_is_batch("run.bats"), 0);
    assert_int_equal(apc_cmdline_is_batch("run"), 0);
    assert_int_equal(apc_cmdline_is_batch("bat"), 0);
    assert_int_equal(apc_cmdline_is_batch(""), 0);
    assert_int_equal(apc_cmdline_is_batch(NULL), 0);
}

static void batch_arguments_with_cmd_metacharacters_are_refused(void **state)
{
    static const char specials[] = "%!^&|<>()\"";
    const char *p;
    (void)state;
    for (p = specials; *p != '\0'; p++) {
        const char arg[] = {'a', *p, 'b', '\0'};
        char want[160];
        const char *argv[] = {"C:\\jobs\\run.cmd", "ok", arg, NULL};
        apc_buf_t b = {0};
        char err[200];
        assert_int_equal(apc_cmdline_build(argv, &b, err, sizeof err), APC_EINVAL);
        snprintf(want, sizeof want,
                 "argv[2] contains '%c', which cmd.exe would interpret in an argument to a batch "
                 "file",
                 *p);
        assert_string_equal(err, want);
        apc_buf_free(&b);
    }
}

static void batch_arguments_with_line_breaks_are_refused(void **state)
{
    const char *argv[] = {"run.bat", "line1\nline2", NULL};
    const char *argv_cr[] = {"run.bat", "x", "a\rb", NULL};
    apc_buf_t b = {0};
    char err[200];
    (void)state;
    assert_int_equal(apc_cmdline_build(argv, &b, err, sizeof err), APC_EINVAL);
    assert_string_equal(err, "argv[1] contains control character 0x0A, which cmd.exe would "
                             "interpret in an argument to a batch file");
    assert_int_equal(apc_cmdline_build(argv_cr, &b, err, sizeof err), APC_EINVAL);
    assert_string_equal(err, "argv[2] contains control character 0x0D, which cmd.exe would "
                             "interpret in an argument to a batch file");
    apc_buf_free(&b);
}

static void the_cve_2024_24576_payload_is_refused(void **state)
{
    const char *argv[] = {"test.bat", "\"&calc.exe", NULL};
    apc_buf_t b = {0};
    char err[200];
    (void)state;
    assert_int_equal(apc_cmdline_build(argv, &b, err, sizeof err), APC_EINVAL);
    assert_string_equal(err, "argv[1] contains '\"', which cmd.exe would interpret in an "
                             "argument to a batch file");
    apc_buf_free(&b);
}

static void batch_separators_are_quoted_and_path_always_quoted(void **state)
{
    const char *argv[] = {"C:\\jobs\\run.bat", "a,b", "c;d", "k=v", "plain", "x y",
                          "C:\\d\\",           "",    NULL};
    (void)state;
    expect_line(argv, "\"C:\\jobs\\run.bat\" \"a,b\" \"c;d\" \"k=v\" plain \"x y\" C:\\d\\ \"\"");
    round_trip(argv);
}

static void batch_path_with_percent_is_refused_but_parens_allowed(void **state)
{
    const char *bad[] = {"C:\\%TEMP%\\run.bat", NULL};
    const char *good[] = {"C:\\Program Files (x86)\\x\\run.bat", "a", NULL};
    apc_buf_t b = {0};
    char err[200];
    (void)state;
    assert_int_equal(apc_cmdline_build(bad, &b, err, sizeof err), APC_EINVAL);
    assert_string_equal(err, "argv[0] contains '%', which cmd.exe would interpret in the path of a "
                             "batch file");
    expect_line(good, "\"C:\\Program Files (x86)\\x\\run.bat\" a");
    apc_buf_free(&b);
}

static void metacharacters_are_fine_for_a_normal_program(void **state)
{
    const char *argv[] = {"x.exe", "100%", "a&b|c", "(x)", "!y!", "^", "line1\nline2", NULL};
    (void)state;
    expect_line(argv, "x.exe 100% a&b|c (x) !y! ^ line1\nline2");
    round_trip(argv);
}

static void parser_follows_the_crt_rules(void **state)
{
    const char *a1[] = {"prog", "a", "b c", "d", NULL};
    const char *a2[] = {"C:\\Program Files\\p.exe", "x", NULL};
    const char *a3[] = {"p", "a\\\\b", "c\"d", "e\\", NULL};
    const char *a4[] = {"p", "a\"b", NULL};   /* "" inside quotes is a literal quote */
    const char *a5[] = {"p", "ab", "", NULL}; /* quotes toggle mid-argument */
    const char *a6[] = {"", "x", NULL};       /* leading blank: empty program name */
    const char *a7[] = {"prog", NULL};        /* trailing blanks add nothing */
    const char *a8[] = {"p", "a\\\\", NULL};  /* 4 backslashes + quote -> 2 + toggle */
    (void)state;
    expect_argv("prog a \"b c\" d", a1);
    expect_argv("\"C:\\Program Files\\p.exe\" x", a2);
    expect_argv("p a\\\\b c\\\"d e\\", a3);
    expect_argv("p \"a\"\"b\"", a4);
    expect_argv("p a\"\"b \"\"", a5);
    expect_argv(" x", a6);
    expect_argv("prog \t ", a7);
    expect_argv("p a\\\\\\\\\"\"", a8);
}

static void parser_of_empty_line_gives_an_empty_program(void **state)
{
    const char *want[] = {"", NULL};
    (void)state;
    expect_argv("", want);
}

/* xorshift64*: a small deterministic generator, so a failure can be replayed. */
static uint64_t rnd_state = UINT64_C(0x9E3779B97F4A7C15);
static unsigned rnd(unsigned n)
{
    rnd_state ^= rnd_state >> 12;
    rnd_state ^= rnd_state << 25;
    rnd_state ^= rnd_state >> 27;
    return (unsigned)((rnd_state * UINT64_C(2685821657736338717)) >> 33) % n;
}

static void random_argv_round_trip(void **state)
{
    static const char *const pieces[] = {"a",
                                         "Z",
                                         " ",
                                         "\t",
                                         "\"",
                                         "\\",
                                         "\\\\",
                                         "\\\"",
                                         "'",
                                         "\xc3\xa9",
                                         "\xe2\x82\xac",
                                         "&",
                                         "%",
                                         "^",
                                         "=",
                                         ",",
                                         "/",
                                         "\n",
                                         "*",
                                         "\xf0\x9f\x98\x80"};
    static const char *const prog_pieces[] = {"C:", "\\", "a", " ", "\t", ".", "x", "\xc3\xa9"};
    const size_t np = sizeof pieces / sizeof pieces[0];
    const size_t npp = sizeof prog_pieces / sizeof prog_pieces[0];
    int iter;
    (void)state;
    for (iter = 0; iter < 5000; iter++) {
        char store[8][64];
        const char *argv[9];
        unsigned argc = 1 + rnd(7), i, k;
        for (i = 0; i < argc; i++) {
            store[i][0] = '\0';
            unsigned len = (i == 0) ? 1 + rnd(6) : rnd(8);
            for (k = 0; k < len; k++) {
                const char *pc =
                    i == 0 ? prog_pieces[rnd((unsigned)npp)] : pieces[rnd((unsigned)np)];
                strcat(store[i], pc);
            }
            argv[i] = store[i];
        }
        argv[argc] = NULL;
        round_trip(argv);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(plain_arguments_are_not_quoted),
        cmocka_unit_test(spaces_and_tabs_are_quoted),
        cmocka_unit_test(empty_argument_becomes_two_quotes),
        cmocka_unit_test(quotes_are_escaped_with_a_backslash),
        cmocka_unit_test(backslashes_before_a_quote_are_doubled_plus_one),
        cmocka_unit_test(trailing_backslashes_are_doubled_only_when_quoted),
        cmocka_unit_test(inner_backslashes_are_literal),
        cmocka_unit_test(utf8_passes_through),
        cmocka_unit_test(program_name_keeps_its_trailing_backslash),
        cmocka_unit_test(program_with_a_quote_is_refused),
        cmocka_unit_test(empty_argv_and_empty_program_are_refused),
        cmocka_unit_test(build_appends_and_leaves_buffer_intact_on_error),
        cmocka_unit_test(batch_detection_follows_windows_name_rules),
        cmocka_unit_test(batch_arguments_with_cmd_metacharacters_are_refused),
        cmocka_unit_test(batch_arguments_with_line_breaks_are_refused),
        cmocka_unit_test(the_cve_2024_24576_payload_is_refused),
        cmocka_unit_test(batch_separators_are_quoted_and_path_always_quoted),
        cmocka_unit_test(batch_path_with_percent_is_refused_but_parens_allowed),
        cmocka_unit_test(metacharacters_are_fine_for_a_normal_program),
        cmocka_unit_test(parser_follows_the_crt_rules),
        cmocka_unit_test(parser_of_empty_line_gives_an_empty_program),
        cmocka_unit_test(random_argv_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
