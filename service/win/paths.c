/*
 * paths.c - default configuration path, absolute paths and data folders with a protected DACL
 * (see paths.h).
 *
 * The security descriptor is built from SDDL with ConvertStringSecurityDescriptorToSecurity
 * DescriptorW and handed to CreateDirectoryW, so the folder never exists, even for a moment,
 * with the DACL it would have inherited. Missing parents are created the same way, from the
 * top down, so a whole new tree (C:\ProgramData\ApcSched\runs) is protected.
 *
 * Thread safety: no shared state; any thread (the service main thread calls these at start).
 */
#include "paths.h"

#include <sddl.h>
#include <shlobj.h>
#include <knownfolders.h>
#include <objbase.h>
#include <aclapi.h>

#include <stdlib.h>
#include <string.h>
#include <wchar.h>

#include "apc_str.h"
#include "win_util.h"

#if defined(_MSC_VER)
#pragma comment(lib, "shell32.lib")
#pragma comment(lib, "ole32.lib")
#pragma comment(lib, "uuid.lib")
#pragma comment(lib, "advapi32.lib")
#endif

/* Returns 1 for the two path separators Windows accepts. */
static int is_sep(wchar_t c)
{
    return c == L'\\' || c == L'/';
}

/*
 * Returns the ProgramData folder as a malloc'd wide string, or NULL with err set: the known
 * folder first (it follows a relocated ProgramData), the environment variable as a fallback.
 */
static wchar_t *program_data(int *rc, char *err, size_t errsz)
{
    PWSTR known = NULL;
    wchar_t *env = NULL;
    DWORD n;
    HRESULT hr;

    hr = SHGetKnownFolderPath(&FOLDERID_ProgramData, KF_FLAG_DEFAULT, NULL, &known);
    if (SUCCEEDED(hr) && known != NULL && known[0] != L'\0') {
        size_t len = wcslen(known) + 1;
        env = malloc(len * sizeof *env);
        if (env != NULL)
            memcpy(env, known, len * sizeof *env);
        CoTaskMemFree(known);
        if (env == NULL)
            *rc = apc_seterr(err, errsz, APC_ENOMEM, "out of memory");
        return env;
    }
    /* The API allocates even on failure in some versions; freeing NULL is harmless. */
    CoTaskMemFree(known);
    n = GetEnvironmentVariableW(L"ProgramData", NULL, 0);
    if (n == 0) {
        *rc = apc_seterr(err, errsz, APC_ENOTFOUND,
                         "cannot find the ProgramData folder (shell error 0x%08lx, and the "
                         "ProgramData environment variable is not set)",
                         (unsigned long)hr);
        return NULL;
    }
    env = malloc((size_t)n * sizeof *env);
    if (env == NULL) {
        *rc = apc_seterr(err, errsz, APC_ENOMEM, "out of memory");
        return NULL;
    }
    if (GetEnvironmentVariableW(L"ProgramData", env, n) != n - 1) {
        free(env);
        *rc = apc_seterr(err, errsz, APC_ENOTFOUND, "the ProgramData variable changed while read");
        return NULL;
    }
    return env;
}

int apc_paths_default_config(char **out, char *err, size_t errsz)
{
    int rc = 0;
    wchar_t *dir = NULL;
    char *udir = NULL;
    apc_buf_t b = {0};

    if (out == NULL)
        return apc_seterr(err, errsz, APC_EINVAL, "no output");
    *out = NULL;
    dir = program_data(&rc, err, errsz);
    if (dir == NULL)
        goto cleanup;
    udir = apc_wide_to_utf8(dir);
    if (udir == NULL) {
        rc = apc_seterr(err, errsz, APC_ENOMEM, "out of memory");
        goto cleanup;
    }
    apc_buf_puts(&b, udir);
    if (b.len > 0 && b.data[b.len - 1] != '\\' && b.data[b.len - 1] != '/')
        apc_buf_puts(&b, "\\");
    apc_buf_puts(&b, APC_PATHS_DEFAULT_SUBDIR "\\" APC_PATHS_DEFAULT_CONFIG);
    *out = apc_buf_take(&b);
    if (*out == NULL)
        rc = apc_seterr(err, errsz, APC_ENOMEM, "out of memory");
cleanup:
    apc_buf_free(&b);
    free(udir);
    free(dir);
    return rc;
}

int apc_paths_absolute(const char *path, char **out, char *err, size_t errsz)
{
    int rc = 0;
    wchar_t *wpath = NULL;
    wchar_t *full = NULL;
    DWORD n, m;

    if (out == NULL)
        return apc_seterr(err, errsz, APC_EINVAL, "no output");
    *out = NULL;
    if (path == NULL || path[0] == '\0')
        return apc_seterr(err, errsz, APC_EINVAL, "empty path");
    wpath = apc_utf8_to_wide(path);
    if (wpath == NULL) {
        rc = apc_seterr(err, errsz, APC_EINVAL, "path is not valid UTF-8");
        goto cleanup;
    }
    n = GetFullPathNameW(wpath, 0, NULL, NULL);
    if (n == 0) {
        rc = apc_win_seterr(err, errsz, GetLastError(), "resolving \"%s\"", path);
        goto cleanup;
    }
    full = malloc((size_t)n * sizeof *full);
    if (full == NULL) {
        rc = apc_seterr(err, errsz, APC_ENOMEM, "out of memory");
        goto cleanup;
    }
    m = GetFullPathNameW(wpath, n, full, NULL);
    if (m == 0 || m >= n) {
        rc = apc_win_seterr(err, errsz, m == 0 ? GetLastError() : ERROR_INSUFFICIENT_BUFFER,
                            "resolving \"%s\"", path);
        goto cleanup;
    }
    *out = apc_wide_to_utf8(full);
    if (*out == NULL)
        rc = apc_seterr(err, errsz, APC_ENOMEM, "out of memory");
cleanup:
    free(full);
    free(wpath);
    return rc;
}

/*
 * Returns the length of the root of w that can never be created ("C:\" = 3, "\\server\share\"
 * up to its end, "\" = 1), so the parent walk stops there.
 */
static size_t root_len(const wchar_t *w)
{
    if (is_sep(w[0]) && is_sep(w[1])) {
        /* \\server\share\ or \\?\C:\ : skip two components after the leading pair. */
        size_t i = 2;
        int parts = 0;
        while (w[i] != L'\0' && parts < 2) {
            if (is_sep(w[i]))
                parts++;
            i++;
        }
        if (w[2] == L'?' && w[i] != L'\0' && w[i + 1] == L':')
            i += is_sep(w[i + 2]) ? 3 : 2;
        return i;
    }
    if (w[0] != L'\0' && w[1] == L':')
        return is_sep(w[2]) ? 3 : 2;
    if (is_sep(w[0]))
        return 1;
    return 0;
}

/* Returns 1 if w names an existing folder, 0 if nothing is there, -1 for a file. */
static int dir_state(const wchar_t *w)
{
    DWORD a = GetFileAttributesW(w);
    if (a == INVALID_FILE_ATTRIBUTES)
        return 0;
    return (a & FILE_ATTRIBUTE_DIRECTORY) ? 1 : -1;
}

int apc_paths_make_data_dir(const char *path, int *created, char *err, size_t errsz)
{
    int rc = 0;
    wchar_t *w = NULL;
    PSECURITY_DESCRIPTOR sd = NULL;
    SECURITY_ATTRIBUTES sa;
    size_t len, root, i;

    if (created != NULL)
        *created = 0;
    if (path == NULL || path[0] == '\0')
        return apc_seterr(err, errsz, APC_EINVAL, "empty folder path");
    w = apc_utf8_to_wide(path);
    if (w == NULL) {
        rc = apc_seterr(err, errsz, APC_EINVAL, "folder path is not valid UTF-8");
        goto cleanup;
    }
    len = wcslen(w);
    while (len > 1 && is_sep(w[len - 1]) && len > root_len(w))
        w[--len] = L'\0';

    switch (dir_state(w)) {
    case 1:
        goto cleanup;
    case -1:
        rc = apc_seterr(err, errsz, APC_EINVAL, "\"%s\" exists and is not a folder", path);
        goto cleanup;
    default:
        break;
    }

    if (!ConvertStringSecurityDescriptorToSecurityDescriptorW(APC_PATHS_DATA_SDDL, SDDL_REVISION_1,
                                                              &sd, NULL)) {
        rc = apc_win_seterr(err, errsz, GetLastError(), "building the data folder DACL");
        goto cleanup;
    }
    sa.nLength = sizeof sa;
    sa.lpSecurityDescriptor = sd;
    sa.bInheritHandle = FALSE;

    /* Create each missing level from the top down: cut the string at each separator. */
    root = root_len(w);
    for (i = root; i <= len; i++) {
        wchar_t saved;
        if (i < len && !is_sep(w[i]))
            continue;
        if (i == root)
            continue;
        saved = w[i];
        w[i] = L'\0';
        if (dir_state(w) == 0) {
            if (CreateDirectoryW(w, &sa)) {
                if (i == len && created != NULL)
                    *created = 1;
            } else {
                DWORD e = GetLastError();
                /* Another process may have made it between the check and the call: fine. */
                if (e != ERROR_ALREADY_EXISTS || dir_state(w) != 1) {
                    char *u = apc_wide_to_utf8(w);
                    rc = apc_win_seterr(err, errsz, e, "creating folder \"%s\"", u ? u : path);
                    free(u);
                    goto cleanup;
                }
            }
        }
        w[i] = saved;
    }
    if (dir_state(w) != 1)
        rc = apc_seterr(err, errsz, APC_EIO, "folder \"%s\" is missing after creation", path);
cleanup:
    if (sd != NULL)
        LocalFree(sd);
    free(w);
    return rc;
}

int apc_paths_make_parent_dir(const char *file_path, char *err, size_t errsz)
{
    int rc;
    char *dir;
    size_t n;

    if (file_path == NULL || file_path[0] == '\0')
        return apc_seterr(err, errsz, APC_EINVAL, "empty file path");
    n = strlen(file_path);
    while (n > 0 && file_path[n - 1] != '\\' && file_path[n - 1] != '/')
        n--;
    if (n == 0)
        return 0;
    /* Keep the separator of a root ("C:\x" -> "C:\"), drop it otherwise ("C:\a\x" -> "C:\a"). */
    if (n > 1 && !(n == 3 && file_path[1] == ':') && file_path[n - 2] != ':')
        n--;
    dir = apc_strndup(file_path, n);
    if (dir == NULL)
        return apc_seterr(err, errsz, APC_ENOMEM, "out of memory");
    rc = apc_paths_make_data_dir(dir, NULL, err, errsz);
    free(dir);
    return rc;
}

int apc_paths_dacl_sddl(const char *path, char **out, char *err, size_t errsz)
{
    int rc = 0;
    wchar_t *w = NULL;
    PSECURITY_DESCRIPTOR sd = NULL;
    PACL dacl = NULL;
    wchar_t *sddl = NULL;
    DWORD e;

    if (out == NULL)
        return apc_seterr(err, errsz, APC_EINVAL, "no output");
    *out = NULL;
    if (path == NULL || path[0] == '\0')
        return apc_seterr(err, errsz, APC_EINVAL, "empty path");
    w = apc_utf8_to_wide(path);
    if (w == NULL) {
        rc = apc_seterr(err, errsz, APC_EINVAL, "path is not valid UTF-8");
        goto cleanup;
    }
    /* GetNamedSecurityInfoW returns its error code instead of setting the last error. */
    e = GetNamedSecurityInfoW(w, SE_FILE_OBJECT, DACL_SECURITY_INFORMATION, NULL, NULL, &dacl, NULL,
                              &sd);
    if (e != ERROR_SUCCESS) {
        rc = apc_win_seterr(err, errsz, e, "reading the DACL of \"%s\"", path);
        goto cleanup;
    }
    if (!ConvertSecurityDescriptorToStringSecurityDescriptorW(
            sd, SDDL_REVISION_1, DACL_SECURITY_INFORMATION, &sddl, NULL)) {
        rc = apc_win_seterr(err, errsz, GetLastError(), "formatting the DACL of \"%s\"", path);
        goto cleanup;
    }
    *out = apc_wide_to_utf8(sddl);
    if (*out == NULL)
        rc = apc_seterr(err, errsz, APC_ENOMEM, "out of memory");
cleanup:
    if (sddl != NULL)
        LocalFree(sddl);
    if (sd != NULL)
        LocalFree(sd);
    free(w);
    return rc;
}
