/*
 * test_paths.c - data folders get the protected DACL (read back as SDDL), parents are created
 * too, existing folders are left alone, and the default configuration path.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "paths.h"
#include "win_util.h"

#include <sddl.h>
#include "win_util.h"

static char dir[MAX_PATH * 3];

static int setup(void **state)
{
    wchar_t tmp[MAX_PATH];
    char *t;
    static int seq;
    (void)state;
    assert_true(GetTempPathW(MAX_PATH, tmp) > 0);
    t = apc_wide_to_utf8(tmp);
    (void)snprintf(dir, sizeof dir, "%sapc-test-paths-%lu-%llu-%d", t, GetCurrentProcessId(),
                   (unsigned long long)GetTickCount64(), ++seq);
    free(t);
    assert_true(CreateDirectoryA(dir, NULL));
    return 0;
}

static char *sddl_of(const char *path)
{
    char *s = NULL;
    char err[256];
    assert_int_equal(apc_paths_dacl_sddl(path, &s, err, sizeof err), 0);
    return s;
}

/* What Windows reads back for APC_PATHS_DATA_SDDL on a new folder. */
static const char want_sddl[] = "D:P(A;OICI;FA;;;SY)(A;OICI;FA;;;BA)(A;OICI;0x1200a9;;;BU)";

/* Wine 8 ignores the security descriptor given to CreateDirectoryW (it reads back its own
   default DACL), so there the exact read-back is verified on Windows only. */
static int under_wine(void)
{
    HMODULE ntdll = GetModuleHandleW(L"ntdll.dll");
    return ntdll != NULL && GetProcAddress(ntdll, "wine_get_version") != NULL;
}

static void assert_data_dacl(const char *path)
{
    char *s = sddl_of(path);
    if (under_wine())
        print_message("Wine: DACL of %s reads back as %s; the exact SDDL check runs on Windows "
                      "only\n",
                      path, s);
    else
        assert_string_equal(s, want_sddl);
    free(s);
}

static void data_sddl_round_trips_through_the_security_descriptor(void **state)
{
    PSECURITY_DESCRIPTOR sd = NULL;
    LPWSTR back = NULL;
    char *u;
    (void)state;
    assert_true(ConvertStringSecurityDescriptorToSecurityDescriptorW(APC_PATHS_DATA_SDDL,
                                                                     SDDL_REVISION_1, &sd, NULL));
    assert_true(ConvertSecurityDescriptorToStringSecurityDescriptorW(
        sd, SDDL_REVISION_1, DACL_SECURITY_INFORMATION, &back, NULL));
    u = apc_wide_to_utf8(back);
    assert_string_equal(u, want_sddl);
    free(u);
    LocalFree(back);
    LocalFree(sd);
}

static void new_data_folder_gets_the_protected_dacl(void **state)
{
    char p[MAX_PATH * 3];
    char err[256];
    int created = -1;
    (void)state;
    (void)snprintf(p, sizeof p, "%s\\data", dir);
    assert_int_equal(apc_paths_make_data_dir(p, &created, err, sizeof err), 0);
    assert_int_equal(created, 1);
    assert_data_dacl(p);
}

static void missing_parents_get_the_same_dacl(void **state)
{
    char p[MAX_PATH * 3], parent[MAX_PATH * 3];
    char err[256];
    (void)state;
    (void)snprintf(parent, sizeof parent, "%s\\a", dir);
    (void)snprintf(p, sizeof p, "%s\\a\\b\\c\\", dir);
    assert_int_equal(apc_paths_make_data_dir(p, NULL, err, sizeof err), 0);
    assert_data_dacl(parent);
    (void)snprintf(p, sizeof p, "%s\\a\\b\\c", dir);
    assert_true(GetFileAttributesA(p) != INVALID_FILE_ATTRIBUTES);
}

static void existing_folder_keeps_its_dacl(void **state)
{
    char p[MAX_PATH * 3];
    char err[256];
    char *before, *after;
    int created = -1;
    (void)state;
    (void)snprintf(p, sizeof p, "%s\\mine", dir);
    assert_true(CreateDirectoryA(p, NULL));
    before = sddl_of(p);
    assert_int_equal(apc_paths_make_data_dir(p, &created, err, sizeof err), 0);
    assert_int_equal(created, 0);
    after = sddl_of(p);
    assert_string_equal(after, before);
    free(before);
    free(after);
}

static void a_file_in_the_way_is_refused(void **state)
{
    char p[MAX_PATH * 3], want[MAX_PATH * 3 + 64];
    char err[512];
    FILE *f;
    (void)state;
    (void)snprintf(p, sizeof p, "%s\\file", dir);
    f = fopen(p, "wb");
    assert_non_null(f);
    fclose(f);
    assert_int_equal(apc_paths_make_data_dir(p, NULL, err, sizeof err), APC_EINVAL);
    (void)snprintf(want, sizeof want, "\"%s\" exists and is not a folder", p);
    assert_string_equal(err, want);
}

static void parent_folder_of_a_file_is_created(void **state)
{
    char p[MAX_PATH * 3];
    char err[256];
    (void)state;
    (void)snprintf(p, sizeof p, "%s\\db\\history.db", dir);
    assert_int_equal(apc_paths_make_parent_dir(p, err, sizeof err), 0);
    (void)snprintf(p, sizeof p, "%s\\db", dir);
    assert_data_dacl(p);
    assert_int_equal(apc_paths_make_parent_dir("history.db", err, sizeof err), 0);
}

static void default_config_is_below_programdata(void **state)
{
    wchar_t env[MAX_PATH];
    char *pd, *cfg = NULL, want[MAX_PATH * 3 + 64];
    char err[256];
    (void)state;
    assert_true(GetEnvironmentVariableW(L"ProgramData", env, MAX_PATH) > 0);
    pd = apc_wide_to_utf8(env);
    (void)snprintf(want, sizeof want, "%s\\ApcSched\\apcsvc.json", pd);
    assert_int_equal(apc_paths_default_config(&cfg, err, sizeof err), 0);
    assert_string_equal(cfg, want);
    free(cfg);
    free(pd);
}

static void relative_path_becomes_absolute(void **state)
{
    wchar_t cwd[MAX_PATH];
    char *c, *abs = NULL, want[MAX_PATH * 3 + 64];
    char err[256];
    (void)state;
    assert_true(GetCurrentDirectoryW(MAX_PATH, cwd) > 0);
    c = apc_wide_to_utf8(cwd);
    (void)snprintf(want, sizeof want, "%s%sconf\\apcsvc.json", c,
                   c[strlen(c) - 1] == '\\' ? "" : "\\");
    assert_int_equal(apc_paths_absolute("x\\..\\conf\\.\\apcsvc.json", &abs, err, sizeof err), 0);
    assert_string_equal(abs, want);
    free(abs);
    free(c);
    assert_int_equal(apc_paths_absolute("", &abs, err, sizeof err), APC_EINVAL);
    assert_string_equal(err, "empty path");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(data_sddl_round_trips_through_the_security_descriptor),
        cmocka_unit_test_setup(new_data_folder_gets_the_protected_dacl, setup),
        cmocka_unit_test_setup(missing_parents_get_the_same_dacl, setup),
        cmocka_unit_test_setup(existing_folder_keeps_its_dacl, setup),
        cmocka_unit_test_setup(a_file_in_the_way_is_refused, setup),
        cmocka_unit_test_setup(parent_folder_of_a_file_is_created, setup),
        cmocka_unit_test(default_config_is_below_programdata),
        cmocka_unit_test(relative_path_becomes_absolute),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
