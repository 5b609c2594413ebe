/*
 * apc_cmdline.c - argv <-> Windows command line (see apc_cmdline.h).
 *
 * Why this way: the builder emits the smallest quoting that the Microsoft
 * C runtime and CommandLineToArgvW both split back into the same argv (it
 * never emits "" inside quotes, the one place where the two parsers and the
 * CRT versions disagree). The parser implements the UCRT rules so that the
 * tests can prove the builder by round trips. For batch files we refuse
 * rather than escape: cmd.exe's escaping rules depend on the quote state,
 * on delayed expansion settings and on what the script does with %1, so no
 * escaping is right for every script, while a refusal is always safe and
 * tells the operator exactly which argument to change.
 *
 * Thread safety: no state; any thread.
 */
#include "apc_cmdline.h"

#include <stdlib.h>
#include <string.h>

#include "apc_error.h"

/* ASCII lower-case, locale-independent (file names are compared the way Windows does for ASCII). */
static char lower(char c)
{
    return (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
}

/* Returns 1 if the n bytes before end (s..end) equal suffix, ASCII case-insensitively. */
static int ends_with_ci(const char *s, size_t len, const char *suffix)
{
    size_t n = strlen(suffix), i;

    if (len < n)
        return 0;
    for (i = 0; i < n; i++)
        if (lower(s[len - n + i]) != suffix[i])
            return 0;
    return 1;
}

int apc_cmdline_is_batch(const char *path)
{
    size_t len;

    if (path == NULL)
        return 0;
    len = strlen(path);
    /*
     * Windows drops trailing dots and spaces from the final path component
     * when it resolves a name (GetFullPathNameW), so "x.bat. ." opens x.bat
     * and CreateProcess runs it through cmd.exe; an explicit default data
     * stream "x.bat::$DATA" names the same file. Strip both, repeatedly,
     * before looking at the extension.
     */
    for (;;) {
        while (len > 0 && (path[len - 1] == '.' || path[len - 1] == ' '))
            len--;
        if (ends_with_ci(path, len, "::$data")) {
            len -= 7;
            continue;
        }
        break;
    }
    return ends_with_ci(path, len, ".bat") || ends_with_ci(path, len, ".cmd");
}

/* Returns 1 if cmd.exe gives c a meaning of its own anywhere on a batch file's command line. */
static int cmd_special(unsigned char c)
{
    return c != '\0' && strchr("%!^&|<>()\"", c) != NULL;
}

/* Returns 1 for a C0 control character or DEL, except tab. */
static int control_char(unsigned char c)
{
    return (c < 0x20 && c != '\t') || c == 0x7f;
}

/* Writes an error naming argument idx and the offending byte c. */
static int refuse(char *err, size_t errsz, size_t idx, unsigned char c, const char *why)
{
    if (control_char(c))
        return apc_seterr(err, errsz, APC_EINVAL, "argv[%lu] contains control character 0x%02X, %s",
                          (unsigned long)idx, (unsigned)c, why);
    return apc_seterr(err, errsz, APC_EINVAL, "argv[%lu] contains '%c', %s", (unsigned long)idx,
                      (char)c, why);
}

/* Checks one argument of a batch file; returns 0 or APC_EINVAL with the message. */
static int check_batch_arg(const char *arg, size_t idx, char *err, size_t errsz)
{
    const unsigned char *p;

    for (p = (const unsigned char *)arg; *p != '\0'; p++) {
        if (idx == 0) {
            /* The script path is always quoted, so only expansion and line breaks matter. */
            if (*p == '%' || *p == '!' || control_char(*p))
                return refuse(err, errsz, idx, *p,
                              "which cmd.exe would interpret in the path of a batch file");
        } else if (cmd_special(*p) || control_char(*p)) {
            return refuse(err, errsz, idx, *p,
                          "which cmd.exe would interpret in an argument to a batch file");
        }
    }
    return 0;
}

/* Appends one non-program argument with CRT quoting. */
static void append_arg(apc_buf_t *out, const char *arg, int quote)
{
    size_t backslashes = 0, k;
    const char *p;

    if (quote)
        apc_buf_append(out, "\"", 1);
    for (p = arg; *p != '\0'; p++) {
        if (*p == '\\') {
            backslashes++;
            continue;
        }
        if (*p == '"') {
            /* n backslashes before a quote become 2n+1: n literal ones and an escape. */
            for (k = 0; k < backslashes + 1; k++)
                apc_buf_append(out, "\\", 1);
        }
        for (k = 0; k < backslashes; k++)
            apc_buf_append(out, "\\", 1);
        backslashes = 0;
        apc_buf_append(out, p, 1);
    }
    /* Trailing backslashes: doubled when a closing quote follows them, else literal. */
    for (k = 0; k < (quote ? 2 * backslashes : backslashes); k++)
        apc_buf_append(out, "\\", 1);
    if (quote)
        apc_buf_append(out, "\"", 1);
}

int apc_cmdline_build(const char *const *argv, apc_buf_t *out, char *err, size_t errsz)
{
    size_t start_len = out->len, i;
    int start_failed = out->failed, batch;

    if (argv == NULL || argv[0] == NULL)
        return apc_seterr(err, errsz, APC_EINVAL, "argv is empty: a job needs a program");
    if (argv[0][0] == '\0')
        return apc_seterr(err, errsz, APC_EINVAL, "argv[0] (the program) is empty");
    if (strchr(argv[0], '"') != NULL)
        return apc_seterr(err, errsz, APC_EINVAL,
                          "argv[0] contains '\"', which a Windows program path cannot hold");
    batch = apc_cmdline_is_batch(argv[0]);
    if (batch) {
        for (i = 0; argv[i] != NULL; i++) {
            int rc = check_batch_arg(argv[i], i, err, errsz);
            if (rc != 0)
                return rc;
        }
    }

    /* The program name: no escapes exist in this rule, only quotes around blanks. */
    if (batch || strpbrk(argv[0], " \t") != NULL) {
        apc_buf_append(out, "\"", 1);
        apc_buf_puts(out, argv[0]);
        apc_buf_append(out, "\"", 1);
    } else {
        apc_buf_puts(out, argv[0]);
    }
    for (i = 1; argv[i] != NULL; i++) {
        const char *blanks = batch ? " \t,;=" : " \t";
        int quote = argv[i][0] == '\0' || strpbrk(argv[i], blanks) != NULL;

        apc_buf_append(out, " ", 1);
        append_arg(out, argv[i], quote);
    }
    if (apc_buf_failed(out) && !start_failed) {
        out->failed = 0;
        out->len = start_len;
        if (out->data != NULL)
            out->data[start_len] = '\0';
        return apc_seterr(err, errsz, APC_ENOMEM, "out of memory building a command line");
    }
    return 0;
}

void apc_cmdline_free(char **argv)
{
    size_t i;

    if (argv == NULL)
        return;
    for (i = 0; argv[i] != NULL; i++)
        free(argv[i]);
    free(argv);
}

/* Appends a finished argument to the growing array; returns 0 or APC_ENOMEM. */
static int push_arg(char ***argv, size_t *argc, size_t *cap, apc_buf_t *cur)
{
    char *s;

    if (*argc + 2 > *cap) {
        size_t ncap = *cap ? *cap * 2 : 8;
        char **p = realloc(*argv, ncap * sizeof *p);

        if (p == NULL)
            return APC_ENOMEM;
        *argv = p;
        *cap = ncap;
    }
    s = apc_buf_take(cur);
    if (s == NULL)
        return APC_ENOMEM;
    (*argv)[(*argc)++] = s;
    (*argv)[*argc] = NULL;
    return 0;
}

int apc_cmdline_parse(const char *cmdline, char ***argv_out, size_t *argc_out, char *err,
                      size_t errsz)
{
    apc_buf_t cur = {0};
    char **argv = NULL;
    size_t argc = 0, cap = 0, k;
    const char *p = cmdline;
    int in_quotes = 0, rc = 0;

    if (argv_out == NULL || argc_out == NULL || cmdline == NULL)
        return apc_seterr(err, errsz, APC_EINVAL, "apc_cmdline_parse: NULL argument");
    *argv_out = NULL;
    *argc_out = 0;

    /* argv[0]: quotes toggle and are dropped; a blank outside quotes ends it. */
    for (; *p != '\0'; p++) {
        if (*p == '"') {
            in_quotes = !in_quotes;
            continue;
        }
        if (!in_quotes && (*p == ' ' || *p == '\t'))
            break;
        apc_buf_append(&cur, p, 1);
    }
    rc = push_arg(&argv, &argc, &cap, &cur);
    if (rc != 0)
        goto cleanup;

    for (;;) {
        while (*p == ' ' || *p == '\t')
            p++;
        if (*p == '\0')
            break;
        in_quotes = 0;
        for (;;) {
            size_t backslashes = 0;
            int copy = 1;

            while (*p == '\\') {
                p++;
                backslashes++;
            }
            if (*p == '"') {
                if (backslashes % 2 == 0) {
                    if (in_quotes && p[1] == '"') {
                        p++; /* "" inside quotes: a literal quote, quoting goes on */
                    } else {
                        copy = 0;
                        in_quotes = !in_quotes;
                    }
                }
                backslashes /= 2;
            }
            for (k = 0; k < backslashes; k++)
                apc_buf_append(&cur, "\\", 1);
            if (*p == '\0' || (!in_quotes && (*p == ' ' || *p == '\t')))
                break;
            if (copy)
                apc_buf_append(&cur, p, 1);
            p++;
        }
        rc = push_arg(&argv, &argc, &cap, &cur);
        if (rc != 0)
            goto cleanup;
    }

cleanup:
    apc_buf_free(&cur);
    if (rc != 0) {
        apc_cmdline_free(argv);
        return apc_seterr(err, errsz, rc, "out of memory parsing a command line");
    }
    *argv_out = argv;
    *argc_out = argc;
    return 0;
}
