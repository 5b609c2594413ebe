/*
 * cfgacl.c - the configuration file's ACL check (see cfgacl.h for the rules and why).
 *
 * The check reads the DACL the way the system's access check does, but asks the opposite
 * question: not "may this token write?" but "is there ANY token outside the trusted accounts
 * that this DACL lets write?". So it only needs the SIDs, never group memberships:
 *   - An effective ACCESS_ALLOWED ACE (not INHERIT_ONLY) for an untrusted SID that grants a
 *     dangerous right is a finding, minus the rights an EARLIER ACCESS_DENIED ACE for the
 *     SAME SID takes away: every token that matches the allow ACE also matches that deny ACE,
 *     and the access check reads ACEs in order. A deny ACE for another SID (say Guests before
 *     an allow for Users) proves nothing about the members of Users, so it is not counted:
 *     conservative, never too lenient.
 *   - CREATOR OWNER (S-1-3-0) and OWNER RIGHTS (S-1-3-4) are not findings: no token carries
 *     CREATOR OWNER, so an effective ACE for it grants nothing (its inheritable form is what
 *     gives a NEW object's creator access, which the owner rule covers), and OWNER RIGHTS
 *     grants to the owner, who must be trusted anyway.
 *   - The owner must be trusted, because an owner is always allowed READ_CONTROL and
 *     WRITE_DAC (unless OWNER RIGHTS says otherwise) and so could grant itself anything.
 *   - Conditional (callback) allow ACEs count as grants; conditional deny ACEs and object
 *     ACEs (never used on files) are not trusted to take anything away: an allow object ACE
 *     is a finding.
 *
 * Thread: any; nothing here keeps state between calls.
 */
#include "cfgacl.h"

#include <aclapi.h>
#include <sddl.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apc_error.h"
#include "win_util.h"

#if defined(_MSC_VER)
#pragma comment(lib, "advapi32.lib")
#endif

/* NT SERVICE\TrustedInstaller, the owner of Windows' own files. */
#define TRUSTED_INSTALLER_SID L"S-1-5-80-956008885-3418522649-1831038044-1853292631-2271478464"

/* The rights that let someone change a file's content or its protection. */
#define FILE_DANGEROUS (FILE_WRITE_DATA | FILE_APPEND_DATA | DELETE | WRITE_DAC | WRITE_OWNER)
/* The rights that let someone replace the file in a folder, or the folder itself. */
#define FOLDER_DANGEROUS (FILE_DELETE_CHILD | DELETE | WRITE_DAC | WRITE_OWNER)

/* Names of the dangerous bits, in the order they are printed. */
static const struct {
    DWORD bit;
    const char *name;
} right_names[] = {
    {FILE_WRITE_DATA, "FILE_WRITE_DATA"},
    {FILE_APPEND_DATA, "FILE_APPEND_DATA"},
    {FILE_DELETE_CHILD, "FILE_DELETE_CHILD"},
    {DELETE, "DELETE"},
    {WRITE_DAC, "WRITE_DAC"},
    {WRITE_OWNER, "WRITE_OWNER"},
};

/* The trusted SIDs, built once per check. */
typedef struct trusted {
    BYTE system[SECURITY_MAX_SID_SIZE];
    BYTE admins[SECURITY_MAX_SID_SIZE];
    BYTE creator_owner[SECURITY_MAX_SID_SIZE];
    BYTE owner_rights[SECURITY_MAX_SID_SIZE];
    PSID installer; /* LocalFree */
    PSID self;      /* borrowed, may be NULL */
} trusted_t;

static int trusted_init(trusted_t *t, PSID self, char *err, size_t errsz)
{
    DWORD n;

    memset(t, 0, sizeof *t);
    t->self = self;
    n = sizeof t->system;
    if (!CreateWellKnownSid(WinLocalSystemSid, NULL, t->system, &n))
        return apc_win_seterr(err, errsz, GetLastError(), "CreateWellKnownSid(LocalSystem)");
    n = sizeof t->admins;
    if (!CreateWellKnownSid(WinBuiltinAdministratorsSid, NULL, t->admins, &n))
        return apc_win_seterr(err, errsz, GetLastError(), "CreateWellKnownSid(Administrators)");
    n = sizeof t->creator_owner;
    if (!CreateWellKnownSid(WinCreatorOwnerSid, NULL, t->creator_owner, &n))
        return apc_win_seterr(err, errsz, GetLastError(), "CreateWellKnownSid(CREATOR OWNER)");
    /* OWNER RIGHTS is S-1-3-4; mingw's WELL_KNOWN_SID_TYPE may lack its name, so build it. */
    {
        SID_IDENTIFIER_AUTHORITY creator = {SECURITY_CREATOR_SID_AUTHORITY};
        if (!InitializeSid((PSID)t->owner_rights, &creator, 1))
            return apc_win_seterr(err, errsz, GetLastError(), "InitializeSid(OWNER RIGHTS)");
        *GetSidSubAuthority((PSID)t->owner_rights, 0) = 4;
    }
    if (!ConvertStringSidToSidW(TRUSTED_INSTALLER_SID, &t->installer)) {
        t->installer = NULL;
        return apc_win_seterr(err, errsz, GetLastError(),
                              "ConvertStringSidToSid(TrustedInstaller)");
    }
    return 0;
}

static void trusted_free(trusted_t *t)
{
    if (t->installer != NULL)
        LocalFree(t->installer);
    t->installer = NULL;
}

/* 1 if sid may change the configuration without making anything less safe. */
static int is_trusted(trusted_t *t, PSID sid)
{
    return EqualSid(sid, (PSID)t->system) || EqualSid(sid, (PSID)t->admins) ||
           EqualSid(sid, t->installer) || (t->self != NULL && EqualSid(sid, t->self));
}

/* "DOMAIN\name" (or "name" when the domain is empty, as for Everyone), else the SID string. */
static void account_name(PSID sid, char *out, size_t outsz)
{
    wchar_t name[256], domain[256];
    DWORD nn = 256, dn = 256;
    SID_NAME_USE use;
    wchar_t *ssid = NULL;
    char *u = NULL, *d = NULL;

    if (LookupAccountSidW(NULL, sid, name, &nn, domain, &dn, &use)) {
        u = apc_wide_to_utf8(name);
        d = apc_wide_to_utf8(domain);
        if (u != NULL && d != NULL) {
            if (d[0] != '\0')
                (void)snprintf(out, outsz, "%s\\%s", d, u);
            else
                (void)snprintf(out, outsz, "%s", u);
            goto cleanup;
        }
    }
    if (ConvertSidToStringSidW(sid, &ssid)) {
        free(u);
        u = apc_wide_to_utf8(ssid);
        LocalFree(ssid);
        if (u != NULL) {
            (void)snprintf(out, outsz, "%s", u);
            goto cleanup;
        }
    }
    (void)snprintf(out, outsz, "an unnamed account");
cleanup:
    free(u);
    free(d);
}

/* The SID in string form ("S-1-5-32-545") for the icacls command; "?" if it cannot be made. */
static void sid_string(PSID sid, char *out, size_t outsz)
{
    wchar_t *ssid = NULL;
    char *u = NULL;

    if (ConvertSidToStringSidW(sid, &ssid)) {
        u = apc_wide_to_utf8(ssid);
        LocalFree(ssid);
    }
    (void)snprintf(out, outsz, "%s", u != NULL ? u : "?");
    free(u);
}

static void rights_text(DWORD mask, char *out, size_t outsz)
{
    size_t i, len = 0;

    out[0] = '\0';
    for (i = 0; i < sizeof right_names / sizeof right_names[0]; i++) {
        if ((mask & right_names[i].bit) == 0)
            continue;
        (void)snprintf(out + len, outsz - len, "%s%s", len > 0 ? "|" : "", right_names[i].name);
        len = strlen(out);
    }
}

/*
 * The icacls command that gives path the protection the installer gives it. extra_sid, if
 * not NULL, is the SID of an entry that must go too (any but Users, whose entry /grant:r
 * replaces with read access).
 */
static void fix_text(const char *path, int is_folder, const char *extra_sid, char *out,
                     size_t outsz)
{
    const char *inh = is_folder ? "(OI)(CI)" : "";
    (void)snprintf(out, outsz,
                   "icacls \"%s\" /inheritance:r /grant:r *S-1-5-18:%sF *S-1-5-32-544:%sF "
                   "*S-1-5-32-545:%s%s%s%s",
                   path, inh, inh, inh, is_folder ? "RX" : "R",
                   extra_sid != NULL ? " /remove:g *" : "", extra_sid != NULL ? extra_sid : "");
}

static const char tail_text[] = "; or start the service with --allow-insecure-config";

int apc_cfgacl_check_sd(PSECURITY_DESCRIPTOR sd, int is_folder, const char *path, PSID self_sid,
                        char *err, size_t errsz)
{
    GENERIC_MAPPING map = {FILE_GENERIC_READ, FILE_GENERIC_WRITE, FILE_GENERIC_EXECUTE,
                           FILE_ALL_ACCESS};
    const DWORD dangerous = is_folder ? FOLDER_DANGEROUS : FILE_DANGEROUS;
    const char *what = is_folder ? "this folder" : "this file";
    trusted_t t;
    PSID owner = NULL;
    PACL dacl = NULL;
    BOOL present = FALSE, defaulted = FALSE;
    ACL_SIZE_INFORMATION info;
    char account[300], rights[160], fix[1200], sidtext[200];
    DWORD i, k;
    int rc;

    if (sd == NULL || path == NULL)
        return apc_seterr(err, errsz, APC_EINVAL, "cfgacl: no security descriptor or path");
    rc = trusted_init(&t, self_sid, err, errsz);
    if (rc != 0)
        goto cleanup;

    if (!GetSecurityDescriptorOwner(sd, &owner, &defaulted) || owner == NULL) {
        rc = apc_seterr(err, errsz, APC_EINVAL, "%s: the security descriptor has no owner", path);
        goto cleanup;
    }
    if (!is_trusted(&t, owner)) {
        account_name(owner, account, sizeof account);
        rc = apc_seterr(err, errsz, APC_EDENIED,
                        "%s: refused: its owner %s may change the permissions of %s; make "
                        "Administrators the owner: icacls \"%s\" /setowner *S-1-5-32-544%s",
                        path, account, what, path, tail_text);
        goto cleanup;
    }
    if (!GetSecurityDescriptorDacl(sd, &present, &dacl, &defaulted)) {
        rc = apc_win_seterr(err, errsz, GetLastError(), "%s: reading the DACL", path);
        goto cleanup;
    }
    if (!present || dacl == NULL) {
        fix_text(path, is_folder, NULL, fix, sizeof fix);
        rc = apc_seterr(err, errsz, APC_EDENIED,
                        "%s: refused: %s has no DACL, so everyone may change it; make it "
                        "writable by SYSTEM and Administrators only: %s%s",
                        path, what, fix, tail_text);
        goto cleanup;
    }
    if (!GetAclInformation(dacl, &info, sizeof info, AclSizeInformation)) {
        rc = apc_win_seterr(err, errsz, GetLastError(), "%s: reading the DACL", path);
        goto cleanup;
    }
    for (i = 0; i < info.AceCount; i++) {
        ACE_HEADER *h = NULL;
        PSID sid;
        DWORD mask;

        if (!GetAce(dacl, i, (LPVOID *)&h)) {
            rc = apc_win_seterr(err, errsz, GetLastError(), "%s: reading ACE %lu", path,
                                (unsigned long)i);
            goto cleanup;
        }
        if (h->AceFlags & INHERIT_ONLY_ACE)
            continue; /* only a template for children; it does not apply to this object */
        if (h->AceType == ACCESS_ALLOWED_OBJECT_ACE_TYPE ||
            h->AceType == ACCESS_ALLOWED_CALLBACK_OBJECT_ACE_TYPE) {
            fix_text(path, is_folder, NULL, fix, sizeof fix);
            rc = apc_seterr(err, errsz, APC_EDENIED,
                            "%s: refused: ACE %lu of %s is an object ACE (type %u) that this "
                            "check cannot judge; make it writable by SYSTEM and "
                            "Administrators only: %s%s",
                            path, (unsigned long)i, what, (unsigned)h->AceType, fix, tail_text);
            goto cleanup;
        }
        if (h->AceType != ACCESS_ALLOWED_ACE_TYPE && h->AceType != ACCESS_ALLOWED_CALLBACK_ACE_TYPE)
            continue; /* deny ACEs are read below, from the allow ACE they precede */
        /* ACCESS_ALLOWED_ACE and ACCESS_ALLOWED_CALLBACK_ACE share this layout. */
        sid = (PSID) & ((ACCESS_ALLOWED_ACE *)h)->SidStart;
        mask = ((ACCESS_ALLOWED_ACE *)h)->Mask;
        MapGenericMask(&mask, &map);
        if (is_trusted(&t, sid) || EqualSid(sid, (PSID)t.creator_owner) ||
            EqualSid(sid, (PSID)t.owner_rights))
            continue;
        /* What earlier deny ACEs for this very SID take away from every matching token. */
        for (k = 0; k < i && (mask & dangerous) != 0; k++) {
            ACE_HEADER *d = NULL;
            DWORD dmask;

            if (!GetAce(dacl, k, (LPVOID *)&d) || d->AceType != ACCESS_DENIED_ACE_TYPE ||
                (d->AceFlags & INHERIT_ONLY_ACE))
                continue;
            if (!EqualSid((PSID) & ((ACCESS_DENIED_ACE *)d)->SidStart, sid))
                continue;
            dmask = ((ACCESS_DENIED_ACE *)d)->Mask;
            MapGenericMask(&dmask, &map);
            mask &= ~dmask;
        }
        if ((mask & dangerous) == 0)
            continue;
        account_name(sid, account, sizeof account);
        rights_text(mask & dangerous, rights, sizeof rights);
        sid_string(sid, sidtext, sizeof sidtext);
        fix_text(path, is_folder, strcmp(sidtext, "S-1-5-32-545") != 0 ? sidtext : NULL, fix,
                 sizeof fix);
        rc = apc_seterr(err, errsz, APC_EDENIED,
                        "%s: refused: %s may change %s (ACE grants %s); make it writable by "
                        "SYSTEM and Administrators only: %s%s",
                        path, account, is_folder ? "the files in this folder" : what, rights, fix,
                        tail_text);
        goto cleanup;
    }
    rc = 0;

cleanup:
    trusted_free(&t);
    return rc;
}

/* Reads path's owner and DACL and checks them; ENOTFOUND when it does not exist. */
static int check_one(const char *path, int is_folder, PSID self, char *err, size_t errsz)
{
    wchar_t *w = NULL;
    PSECURITY_DESCRIPTOR sd = NULL;
    DWORD e;
    int rc;

    w = apc_utf8_to_wide(path);
    if (w == NULL)
        return apc_seterr(err, errsz, APC_ENOMEM, "out of memory");
    e = GetNamedSecurityInfoW(w, SE_FILE_OBJECT,
                              OWNER_SECURITY_INFORMATION | DACL_SECURITY_INFORMATION, NULL, NULL,
                              NULL, NULL, &sd);
    if (e == ERROR_FILE_NOT_FOUND || e == ERROR_PATH_NOT_FOUND) {
        rc = APC_ENOTFOUND;
        goto cleanup;
    }
    if (e != ERROR_SUCCESS) {
        sd = NULL;
        rc = apc_win_seterr(err, errsz, e, "%s: reading its owner and DACL", path);
        goto cleanup;
    }
    rc = apc_cfgacl_check_sd(sd, is_folder, path, self, err, errsz);
cleanup:
    if (sd != NULL)
        LocalFree(sd);
    free(w);
    return rc;
}

int apc_cfgacl_check_file(const char *path, char *err, size_t errsz)
{
    HANDLE token = NULL;
    TOKEN_USER *user = NULL;
    char *dir = NULL;
    DWORD n = 0;
    size_t len, cut;
    int rc;

    if (path == NULL || path[0] == '\0')
        return apc_seterr(err, errsz, APC_EINVAL, "cfgacl: no path");
    if (!OpenProcessToken(GetCurrentProcess(), TOKEN_QUERY, &token)) {
        token = NULL;
        rc = apc_win_seterr(err, errsz, GetLastError(), "OpenProcessToken");
        goto cleanup;
    }
    if (!GetTokenInformation(token, TokenUser, NULL, 0, &n) &&
        GetLastError() != ERROR_INSUFFICIENT_BUFFER) {
        rc = apc_win_seterr(err, errsz, GetLastError(), "GetTokenInformation(TokenUser)");
        goto cleanup;
    }
    user = malloc(n);
    if (user == NULL) {
        rc = apc_seterr(err, errsz, APC_ENOMEM, "out of memory");
        goto cleanup;
    }
    if (!GetTokenInformation(token, TokenUser, user, n, &n)) {
        rc = apc_win_seterr(err, errsz, GetLastError(), "GetTokenInformation(TokenUser)");
        goto cleanup;
    }

    rc = check_one(path, 0, user->User.Sid, err, errsz);
    if (rc == APC_ENOTFOUND) {
        rc = 0; /* apc_config_load says "cannot open" in the words operators know */
        goto cleanup;
    }
    if (rc != 0)
        goto cleanup;

    /* The folder: everything before the last separator; "C:\" stays "C:\". */
    len = strlen(path);
    cut = len;
    while (cut > 0 && path[cut - 1] != '\\' && path[cut - 1] != '/')
        cut--;
    if (cut == 0)
        goto cleanup; /* no folder part: apcsvc always passes absolute paths */
    dir = malloc(cut + 1);
    if (dir == NULL) {
        rc = apc_seterr(err, errsz, APC_ENOMEM, "out of memory");
        goto cleanup;
    }
    memcpy(dir, path, cut);
    dir[cut] = '\0';
    if (cut > 1 && !(cut == 3 && dir[1] == ':'))
        dir[cut - 1] = '\0'; /* drop the trailing separator except after a drive */
    rc = check_one(dir, 1, user->User.Sid, err, errsz);
    if (rc == APC_ENOTFOUND)
        rc = 0;

cleanup:
    free(dir);
    free(user);
    if (token != NULL)
        (void)CloseHandle(token);
    return rc;
}
