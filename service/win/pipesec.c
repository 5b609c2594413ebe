/*
 * pipesec.c - the control pipe's security descriptor (as SDDL) and the pipe client's account.
 *
 * See pipesec.h for the policy and docs/security.md for the operator's view. Everything here is
 * a short sequence of Win32 calls whose every return value is checked; each function holds its
 * resources at the top and releases them at one cleanup label.
 *
 * Threads: no shared state. apc_pipesec_client_name impersonates on the calling thread (the
 * pipe thread) for the few calls that need it and reverts before returning.
 */
#include "pipesec.h"

#include <aclapi.h>
#include <sddl.h>

#include <stdlib.h>
#include <string.h>

#include "apc_error.h"
#include "apc_str.h"
#include "win_util.h"

/* Converts a LocalAlloc'd wide string from a conversion API to a malloc'd UTF-8 one. */
static int local_wide_to_utf8(wchar_t *w, char **out, char *err, size_t errsz)
{
    *out = apc_wide_to_utf8(w);
    LocalFree(w);
    if (*out == NULL)
        return apc_seterr(err, errsz, APC_ENOMEM, "out of memory");
    return 0;
}

/*
 * Resolves one account name to a malloc'd SID. Only principals that can hold a token's
 * membership (users, groups, aliases, well-known groups, computers) are accepted: a domain
 * name also resolves to a SID, but granting "a domain" access means nothing and is a typo.
 */
static int lookup_sid(const char *name, PSID *out, char *err, size_t errsz)
{
    wchar_t *wname = NULL;
    PSID sid = NULL;
    wchar_t *domain = NULL;
    DWORD sidlen = 0, domlen = 0, code = ERROR_SUCCESS;
    SID_NAME_USE use = SidTypeUnknown;
    int rc = 0;

    *out = NULL;
    wname = apc_utf8_to_wide(name);
    if (wname == NULL || name[0] == '\0') {
        rc = apc_seterr(err, errsz, APC_EINVAL,
                        "service.control_allow: account \"%s\" is empty or not valid UTF-8", name);
        goto cleanup;
    }
    /* The first call only sizes the buffers; it must fail with ERROR_INSUFFICIENT_BUFFER. */
    if (LookupAccountNameW(NULL, wname, NULL, &sidlen, NULL, &domlen, &use) ||
        (code = GetLastError()) == ERROR_INSUFFICIENT_BUFFER) {
        sid = malloc(sidlen > 0 ? sidlen : 1);
        domain = malloc((domlen > 0 ? domlen : 1) * sizeof(wchar_t));
        if (sid == NULL || domain == NULL) {
            rc = apc_seterr(err, errsz, APC_ENOMEM, "out of memory");
            goto cleanup;
        }
        if (!LookupAccountNameW(NULL, wname, sid, &sidlen, domain, &domlen, &use))
            code = GetLastError();
        else
            code = ERROR_SUCCESS;
    }
    if (code != ERROR_SUCCESS) {
        (void)apc_win_seterr(err, errsz, code, "service.control_allow: unknown account \"%s\"",
                             name);
        rc = APC_EINVAL; /* a configuration error, whatever the system code */
        goto cleanup;
    }
    if (use != SidTypeUser && use != SidTypeGroup && use != SidTypeAlias &&
        use != SidTypeWellKnownGroup && use != SidTypeComputer) {
        rc = apc_seterr(err, errsz, APC_EINVAL,
                        "service.control_allow: \"%s\" is not a user, group or alias (SID type "
                        "%d)",
                        name, (int)use);
        goto cleanup;
    }
    *out = sid;
    sid = NULL;
cleanup:
    free(domain);
    free(sid);
    free(wname);
    return rc;
}

/* Makes a malloc'd well-known SID (SYSTEM, Administrators) to compare configured accounts to. */
static int well_known_sid(WELL_KNOWN_SID_TYPE type, PSID *out, char *err, size_t errsz)
{
    DWORD len = SECURITY_MAX_SID_SIZE;
    PSID sid = malloc(len);

    *out = NULL;
    if (sid == NULL)
        return apc_seterr(err, errsz, APC_ENOMEM, "out of memory");
    if (!CreateWellKnownSid(type, NULL, sid, &len)) {
        int rc = apc_win_seterr(err, errsz, GetLastError(), "CreateWellKnownSid(%d)", (int)type);
        free(sid);
        return rc;
    }
    *out = sid;
    return 0;
}

int apc_pipesec_build(const char *const *allow, apc_pipesec_t *out, char *err, size_t errsz)
{
    apc_buf_t sddl = {0};
    PSID *sids = NULL; /* [0] SYSTEM, [1] Administrators, then every ACE added */
    size_t nallow = 0, nsids = 0, i, j;
    wchar_t *wsddl = NULL;
    wchar_t *sidstr = NULL;
    wchar_t *canon = NULL;
    PSECURITY_DESCRIPTOR sd = NULL;
    int rc = 0;

    if (out == NULL)
        return apc_seterr(err, errsz, APC_EINVAL, "apc_pipesec_build: out is NULL");
    memset(out, 0, sizeof(*out));
    while (allow != NULL && allow[nallow] != NULL)
        nallow++;
    sids = calloc(nallow + 2, sizeof(*sids));
    if (sids == NULL) {
        rc = apc_seterr(err, errsz, APC_ENOMEM, "out of memory");
        goto cleanup;
    }
    if ((rc = well_known_sid(WinLocalSystemSid, &sids[0], err, errsz)) != 0)
        goto cleanup;
    nsids = 1;
    if ((rc = well_known_sid(WinBuiltinAdministratorsSid, &sids[1], err, errsz)) != 0)
        goto cleanup;
    nsids = 2;

    apc_buf_puts(&sddl, APC_PIPESEC_BASE_SDDL);
    for (i = 0; i < nallow; i++) {
        PSID sid = NULL;
        int dup = 0;
        char *s8 = NULL;

        if ((rc = lookup_sid(allow[i], &sid, err, errsz)) != 0)
            goto cleanup;
        for (j = 0; j < nsids && !dup; j++)
            dup = EqualSid(sids[j], sid) ? 1 : 0;
        if (dup) {
            free(sid); /* already granted (as much or more): one ACE per principal */
            continue;
        }
        sids[nsids++] = sid;
        if (!ConvertSidToStringSidW(sid, &sidstr)) {
            rc = apc_win_seterr(err, errsz, GetLastError(), "ConvertSidToStringSidW(\"%s\")",
                                allow[i]);
            goto cleanup;
        }
        rc = local_wide_to_utf8(sidstr, &s8, err, errsz);
        sidstr = NULL;
        if (rc != 0)
            goto cleanup;
        apc_buf_printf(&sddl, "(A;;0x%lx;;;%s)", (unsigned long)APC_PIPESEC_CLIENT_ACCESS, s8);
        free(s8);
    }
    if (apc_buf_failed(&sddl) || (wsddl = apc_utf8_to_wide(sddl.data)) == NULL) {
        rc = apc_seterr(err, errsz, APC_ENOMEM, "out of memory");
        goto cleanup;
    }
    if (!ConvertStringSecurityDescriptorToSecurityDescriptorW(wsddl, SDDL_REVISION_1, &sd, NULL)) {
        rc = apc_win_seterr(err, errsz, GetLastError(),
                            "ConvertStringSecurityDescriptorToSecurityDescriptorW(\"%s\")",
                            sddl.data);
        goto cleanup;
    }
    /* Print it back so that the SDDL we expose is the system's canonical spelling (aliases such
       as BU for well-known SIDs), i.e. exactly what a read-back of the live pipe gives. */
    if (!ConvertSecurityDescriptorToStringSecurityDescriptorW(
            sd, SDDL_REVISION_1, OWNER_SECURITY_INFORMATION | DACL_SECURITY_INFORMATION, &canon,
            NULL)) {
        rc = apc_win_seterr(err, errsz, GetLastError(),
                            "ConvertSecurityDescriptorToStringSecurityDescriptorW");
        goto cleanup;
    }
    rc = local_wide_to_utf8(canon, &out->sddl, err, errsz);
    canon = NULL;
    if (rc != 0)
        goto cleanup;
    out->sd = sd;
    sd = NULL;
cleanup:
    if (sd != NULL)
        LocalFree(sd);
    if (sidstr != NULL)
        LocalFree(sidstr);
    free(wsddl);
    for (i = 0; i < nsids; i++)
        free(sids[i]);
    free(sids);
    apc_buf_free(&sddl);
    return rc;
}

void apc_pipesec_free(apc_pipesec_t *sec)
{
    if (sec == NULL)
        return;
    if (sec->sd != NULL)
        LocalFree(sec->sd);
    free(sec->sddl);
    sec->sd = NULL;
    sec->sddl = NULL;
}

int apc_pipesec_read_sddl(HANDLE h, char **out, char *err, size_t errsz)
{
    PSECURITY_DESCRIPTOR sd = NULL;
    PSID owner = NULL;
    PACL dacl = NULL;
    wchar_t *str = NULL;
    DWORD code;
    int rc = 0;

    if (out == NULL || h == NULL || h == INVALID_HANDLE_VALUE)
        return apc_seterr(err, errsz, APC_EINVAL, "apc_pipesec_read_sddl: bad argument");
    *out = NULL;
    /* GetSecurityInfo returns its error code instead of setting the last error. */
    code =
        GetSecurityInfo(h, SE_KERNEL_OBJECT, OWNER_SECURITY_INFORMATION | DACL_SECURITY_INFORMATION,
                        &owner, NULL, &dacl, NULL, &sd);
    if (code != ERROR_SUCCESS) {
        rc = apc_win_seterr(err, errsz, code, "GetSecurityInfo");
        goto cleanup;
    }
    if (!ConvertSecurityDescriptorToStringSecurityDescriptorW(
            sd, SDDL_REVISION_1, OWNER_SECURITY_INFORMATION | DACL_SECURITY_INFORMATION, &str,
            NULL)) {
        rc = apc_win_seterr(err, errsz, GetLastError(),
                            "ConvertSecurityDescriptorToStringSecurityDescriptorW");
        goto cleanup;
    }
    rc = local_wide_to_utf8(str, out, err, errsz);
cleanup:
    if (sd != NULL)
        LocalFree(sd);
    return rc;
}

/* Names a SID "DOMAIN\user" (or "user" when the domain is empty), else its S-1-... string. */
static int sid_name(PSID sid, char **out, char *err, size_t errsz)
{
    wchar_t name[256], domain[256];
    DWORD nlen = 256, dlen = 256;
    SID_NAME_USE use;
    wchar_t *sidstr = NULL;
    char *n8 = NULL, *d8 = NULL;
    apc_buf_t b = {0};
    int rc = 0;

    if (!LookupAccountSidW(NULL, sid, name, &nlen, domain, &dlen, &use)) {
        DWORD code = GetLastError();
        if (code != ERROR_NONE_MAPPED)
            return apc_win_seterr(err, errsz, code, "LookupAccountSidW");
        /* A deleted or foreign account still has a stable identity: its SID. */
        if (!ConvertSidToStringSidW(sid, &sidstr))
            return apc_win_seterr(err, errsz, GetLastError(), "ConvertSidToStringSidW");
        return local_wide_to_utf8(sidstr, out, err, errsz);
    }
    n8 = apc_wide_to_utf8(name);
    d8 = apc_wide_to_utf8(domain);
    if (n8 == NULL || d8 == NULL) {
        rc = apc_seterr(err, errsz, APC_ENOMEM, "out of memory");
        goto cleanup;
    }
    if (d8[0] != '\0')
        apc_buf_printf(&b, "%s\\%s", d8, n8);
    else
        apc_buf_puts(&b, n8);
    *out = apc_buf_take(&b);
    if (*out == NULL)
        rc = apc_seterr(err, errsz, APC_ENOMEM, "out of memory");
cleanup:
    apc_buf_free(&b);
    free(d8);
    free(n8);
    return rc;
}

int apc_pipesec_client_name(HANDLE pipe, char **out, char *err, size_t errsz)
{
    HANDLE token = NULL;
    TOKEN_USER *user = NULL;
    DWORD len = 0, code = ERROR_SUCCESS;
    int rc = 0;

    if (out == NULL)
        return apc_seterr(err, errsz, APC_EINVAL, "apc_pipesec_client_name: out is NULL");
    *out = NULL;
    if (!ImpersonateNamedPipeClient(pipe))
        return apc_win_seterr(err, errsz, GetLastError(), "ImpersonateNamedPipeClient");
    /* OpenAsSelf: check access against the service's own identity, not the client's (an
       identification-level token could not open itself). The token handle stays valid after
       we revert, so we revert at once and do the rest as ourselves. */
    if (!OpenThreadToken(GetCurrentThread(), TOKEN_QUERY, TRUE, &token)) {
        code = GetLastError();
        token = NULL;
    }
    if (!RevertToSelf()) {
        /* Continuing would run the service's next steps with the client's identity. */
        TerminateProcess(GetCurrentProcess(), APC_PIPESEC_REVERT_EXIT);
        abort(); /* TerminateProcess on ourselves does not return; be sure anyway */
    }
    if (token == NULL)
        return apc_win_seterr(err, errsz, code, "OpenThreadToken");

    if (!GetTokenInformation(token, TokenUser, NULL, 0, &len) &&
        (code = GetLastError()) != ERROR_INSUFFICIENT_BUFFER) {
        rc = apc_win_seterr(err, errsz, code, "GetTokenInformation(TokenUser)");
        goto cleanup;
    }
    user = malloc(len > 0 ? len : 1);
    if (user == NULL) {
        rc = apc_seterr(err, errsz, APC_ENOMEM, "out of memory");
        goto cleanup;
    }
    if (!GetTokenInformation(token, TokenUser, user, len, &len)) {
        rc = apc_win_seterr(err, errsz, GetLastError(), "GetTokenInformation(TokenUser)");
        goto cleanup;
    }
    rc = sid_name(user->User.Sid, out, err, errsz);
cleanup:
    free(user);
    apc_win_close(token);
    return rc;
}
