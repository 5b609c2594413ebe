/*
 * apchelper_child.c - a child program for the process-runner tests (tests/win/test_proc.c).
 *
 * It runs a tiny script given as arguments, one verb at a time, so each test states exactly
 * what the child does:
 *
 *   out TEXT       write TEXT and "\n" to stdout
 *   err TEXT       write TEXT and "\n" to stderr
 *   bytes N        write N bytes "0123456789" repeated to stdout, in chunks
 *   env NAME       write "NAME=value\n", or "NAME unset\n", to stdout
 *   cwd            write the current directory and "\n" to stdout
 *   handles        write the number of open handles of this process and "\n" to stdout
 *   stdin          read stdin to its end and write "stdin: N bytes\n" to stdout
 *   argv           write every argument (argv[0] first), one per line, to stdout; ends the
 *                  script
 *   sleep MS       sleep MS milliseconds
 *   spawn FILE     start this program again as "pidfile FILE sleep 60000" (a grandchild that
 *                  inherits stdout and sleeps), and wait until FILE holds its pid
 *   pidfile FILE   write this process's pid to FILE (through a temporary file and a rename,
 *                  so a reader never sees a partial number)
 *   exit CODE      exit with CODE (decimal or 0x hex, the full 32 bits)
 *
 * Output goes through WriteFile on the standard handles, so bytes arrive exactly as written
 * (no C runtime text-mode translation). Arguments come from GetCommandLineW split by
 * CommandLineToArgvW and are printed as UTF-8.
 *
 * Thread: single-threaded console program.
 */
#include <windows.h>
#include <shellapi.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <wchar.h>

static void put(DWORD which, const char *s, size_t n)
{
    HANDLE h = GetStdHandle(which);
    DWORD done;

    while (n > 0) {
        DWORD chunk = n > 65536 ? 65536 : (DWORD)n;
        if (!WriteFile(h, s, chunk, &done, NULL) || done == 0)
            ExitProcess(201);
        s += done;
        n -= done;
    }
}

static void put_wide(DWORD which, const wchar_t *w)
{
    char buf[8192];
    int n = WideCharToMultiByte(CP_UTF8, 0, w, -1, buf, sizeof buf, NULL, NULL);
    if (n <= 0)
        ExitProcess(202);
    put(which, buf, (size_t)n - 1);
}

static void write_pidfile(const wchar_t *file, DWORD pid)
{
    wchar_t tmp[MAX_PATH + 8];
    char num[32];
    HANDLE h;
    DWORD done;
    int n = snprintf(num, sizeof num, "%lu", (unsigned long)pid);

    if (wcslen(file) > MAX_PATH)
        ExitProcess(203);
    wcscpy(tmp, file);
    wcscat(tmp, L".tmp");
    h = CreateFileW(tmp, GENERIC_WRITE, 0, NULL, CREATE_ALWAYS, 0, NULL);
    if (h == INVALID_HANDLE_VALUE)
        ExitProcess(204);
    if (!WriteFile(h, num, (DWORD)n, &done, NULL) || done != (DWORD)n)
        ExitProcess(205);
    CloseHandle(h);
    if (!MoveFileExW(tmp, file, MOVEFILE_REPLACE_EXISTING))
        ExitProcess(206);
}

static void spawn(const wchar_t *file)
{
    wchar_t self[MAX_PATH], cmd[3 * MAX_PATH];
    STARTUPINFOW si;
    PROCESS_INFORMATION pi;
    DWORD n = GetModuleFileNameW(NULL, self, MAX_PATH);

    if (n == 0 || n >= MAX_PATH)
        ExitProcess(207);
    _snwprintf(cmd, sizeof cmd / sizeof cmd[0], L"\"%ls\" pidfile \"%ls\" sleep 60000", self, file);
    cmd[sizeof cmd / sizeof cmd[0] - 1] = L'\0';
    memset(&si, 0, sizeof si);
    si.cb = sizeof si;
    /* Inherit our stdout/stderr, like a real script's background process would. */
    if (!CreateProcessW(self, cmd, NULL, NULL, TRUE, 0, NULL, NULL, &si, &pi))
        ExitProcess(208);
    CloseHandle(pi.hThread);
    CloseHandle(pi.hProcess);
    /* Wait until the grandchild has written its pid, so the test can always find it. */
    for (n = 0; n < 1000; n++) {
        if (GetFileAttributesW(file) != INVALID_FILE_ATTRIBUTES)
            return;
        Sleep(10);
    }
    ExitProcess(209);
}

int main(void)
{
    int argc = 0, i;
    wchar_t **argv = CommandLineToArgvW(GetCommandLineW(), &argc);

    if (argv == NULL)
        return 200;
    for (i = 1; i < argc; i++) {
        const wchar_t *verb = argv[i];
        const wchar_t *arg = i + 1 < argc ? argv[i + 1] : NULL;
        if (wcscmp(verb, L"argv") == 0) {
            int k;
            for (k = 0; k < argc; k++) {
                put_wide(STD_OUTPUT_HANDLE, argv[k]);
                put(STD_OUTPUT_HANDLE, "\n", 1);
            }
            break;
        }
        if (wcscmp(verb, L"handles") == 0) {
            /* Probing every handle value works on Windows and Wine alike (see test_proc.c). */
            char num[32];
            DWORD n = 0, flags;
            ULONG_PTR v;
            int len;
            for (v = 4; v < 0x40000; v += 4)
                if (GetHandleInformation((HANDLE)v, &flags))
                    n++;
            len = snprintf(num, sizeof num, "%lu\n", (unsigned long)n);
            put(STD_OUTPUT_HANDLE, num, (size_t)len);
            continue;
        }
        if (wcscmp(verb, L"stdin") == 0) {
            char buf[4096], num[48];
            unsigned long total = 0;
            DWORD got;
            int len;
            while (ReadFile(GetStdHandle(STD_INPUT_HANDLE), buf, sizeof buf, &got, NULL) && got > 0)
                total += got;
            len = snprintf(num, sizeof num, "stdin: %lu bytes\n", total);
            put(STD_OUTPUT_HANDLE, num, (size_t)len);
            continue;
        }
        if (wcscmp(verb, L"cwd") == 0) {
            wchar_t dir[MAX_PATH];
            DWORD n = GetCurrentDirectoryW(MAX_PATH, dir);
            if (n == 0 || n >= MAX_PATH)
                return 210;
            put_wide(STD_OUTPUT_HANDLE, dir);
            put(STD_OUTPUT_HANDLE, "\n", 1);
            continue;
        }
        if (arg == NULL)
            return 211; /* every other verb takes one argument */
        i++;
        if (wcscmp(verb, L"out") == 0 || wcscmp(verb, L"err") == 0) {
            DWORD which = verb[0] == L'o' ? STD_OUTPUT_HANDLE : STD_ERROR_HANDLE;
            put_wide(which, arg);
            put(which, "\n", 1);
        } else if (wcscmp(verb, L"bytes") == 0) {
            static char chunk[10000];
            unsigned long long left = wcstoull(arg, NULL, 10);
            size_t k;
            for (k = 0; k < sizeof chunk; k++)
                chunk[k] = (char)('0' + k % 10);
            while (left > 0) {
                size_t n = left > sizeof chunk ? sizeof chunk : (size_t)left;
                put(STD_OUTPUT_HANDLE, chunk, n);
                left -= n;
            }
        } else if (wcscmp(verb, L"env") == 0) {
            wchar_t val[4096];
            DWORD n = GetEnvironmentVariableW(arg, val, 4096);
            put_wide(STD_OUTPUT_HANDLE, arg);
            if (n == 0 && GetLastError() == ERROR_ENVVAR_NOT_FOUND) {
                put(STD_OUTPUT_HANDLE, " unset\n", 7);
            } else {
                if (n >= 4096)
                    return 212;
                if (n == 0)
                    val[0] = L'\0';
                put(STD_OUTPUT_HANDLE, "=", 1);
                put_wide(STD_OUTPUT_HANDLE, val);
                put(STD_OUTPUT_HANDLE, "\n", 1);
            }
        } else if (wcscmp(verb, L"sleep") == 0) {
            Sleep((DWORD)wcstoul(arg, NULL, 10));
        } else if (wcscmp(verb, L"spawn") == 0) {
            spawn(arg);
        } else if (wcscmp(verb, L"pidfile") == 0) {
            write_pidfile(arg, GetCurrentProcessId());
        } else if (wcscmp(verb, L"exit") == 0) {
            ExitProcess((UINT)wcstoul(arg, NULL, 0));
        } else {
            return 213;
        }
    }
    LocalFree(argv);
    return 0;
}
