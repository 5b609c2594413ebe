/*
 * apc_cmdline.h - turn a job's argv into the one command-line string that
 * CreateProcessW takes, and parse such a string back.
 *
 * Why here and pure: Windows passes a single string to the child, which
 * splits it again with the Microsoft C runtime's rules (the same rules as
 * CommandLineToArgvW for everything we emit). Getting the quoting wrong
 * silently changes a job's arguments, and for batch files (.bat/.cmd, run
 * through cmd.exe) it is a command-injection hole (CVE-2024-24576,
 * "BatBadBut"). Keeping the logic portable lets it be proven by round-trip
 * and property tests on any platform; the Windows runtime only converts the
 * UTF-8 result to UTF-16.
 *
 * Strings are UTF-8; bytes >= 0x80 pass through untouched.
 *
 * Thread safety: no state; any thread.
 */
#ifndef APC_CMDLINE_H
#define APC_CMDLINE_H

#include <stddef.h>

#include "apc_str.h"

/*
 * Returns 1 if CreateProcess would run `path` through cmd.exe, i.e. its
 * file name ends in ".bat" or ".cmd" (ASCII case-insensitive) once the
 * trailing dots and spaces that Windows strips from a final path component
 * are removed, and once a trailing "::$DATA" stream suffix is removed.
 * "run.bat", "RUN.CMD", "run.bat.", "run.bat . ", "run.bat::$DATA" are
 * batch files; "run.bat.exe", "run.bats", "run" are not. Returns 0 for NULL.
 */
int apc_cmdline_is_batch(const char *path);

/*
 * Builds the command line for argv (a NULL-terminated array; argv[0] is the
 * program) and appends it to out.
 *
 * argv[0] follows the program-name rule: quoted when it contains a space or
 * tab or is empty, never escaped; it may not contain a double quote. Every
 * other argument is quoted when it is empty or contains a space or tab;
 * inside it a run of n backslashes followed by a quote becomes 2n+1
 * backslashes and the quote, and a run of n backslashes at the end of a
 * quoted argument becomes 2n. Other backslashes are copied as they are.
 *
 * When argv[0] is a batch file (apc_cmdline_is_batch), cmd.exe re-parses the
 * line, so arguments are also checked against cmd.exe: an argument holding
 * any of  % ! ^ & | < > ( ) "  or a control character (other than tab) is
 * refused, and arguments holding cmd.exe's extra separators , ; = are
 * quoted. The program path of a batch file is always quoted and may not hold
 * % ! or a control character.
 *
 * Returns 0; APC_EINVAL with a message naming the argument index and the
 * character (e.g. `argv[2] contains '&', which cmd.exe would interpret in an
 * argument to a batch file`) for a refused argv, a NULL/empty argv or an
 * empty argv[0]; APC_ENOMEM. On failure out is left as it was on entry.
 */
int apc_cmdline_build(const char *const *argv, apc_buf_t *out, char *err, size_t errsz);

/*
 * Splits a command line the way the Microsoft C runtime (since Visual C++
 * 2008, and the UCRT) builds argv for main(): argv[0] by the program-name
 * rule (quotes toggle, no escapes, ends at a space or tab outside quotes),
 * then arguments separated by spaces and tabs, where 2n backslashes + quote
 * give n backslashes and toggle quoting, 2n+1 backslashes + quote give n
 * backslashes and a literal quote, other backslashes are literal, and "" inside a
 * quoted argument is a literal quote.
 *
 * On success returns 0, sets *argv_out to a malloc'd NULL-terminated array of
 * malloc'd strings (free it with apc_cmdline_free) and *argc_out to its
 * length (at least 1: argv[0] may be ""). Returns APC_EINVAL for NULL
 * arguments or APC_ENOMEM; on failure *argv_out is NULL.
 */
int apc_cmdline_parse(const char *cmdline, char ***argv_out, size_t *argc_out, char *err,
                      size_t errsz);

/* Frees an array from apc_cmdline_parse. Accepts NULL. */
void apc_cmdline_free(char **argv);

#endif /* APC_CMDLINE_H */
