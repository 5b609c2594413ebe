/*
 * pipesec.h - who may talk to the control pipe, and who is talking.
 *
 * The control pipe \\.\pipe\<service> lets a caller queue and cancel runs of commands that the
 * service executes as LocalSystem, so its security descriptor is part of the product's security
 * boundary (docs/security.md). It is built here, in one place:
 *
 *   - an explicit, protected DACL, never a NULL one (a NULL DACL grants everyone everything):
 *     SYSTEM and Administrators get FILE_ALL_ACCESS; each account or group named in
 *     service.control_allow gets FILE_GENERIC_READ | FILE_GENERIC_WRITE without
 *     FILE_CREATE_PIPE_INSTANCE, so it can talk to the service but never create a server
 *     instance of the pipe (a squatter could otherwise answer clients in the service's name);
 *   - owner Administrators, which both LocalSystem and an elevated administrator (console
 *     mode) may set as the owner of an object they create.
 *
 * Why SDDL: the descriptor is written as one string (SIDs as strings) and converted with
 * ConvertStringSecurityDescriptorToSecurityDescriptorW. An SDDL string can be logged, compared
 * exactly in tests against the descriptor read back from the live pipe, and read by an
 * operator; hand-built ACLs can be none of these.
 *
 * The caller's identity is taken by impersonating the pipe client just long enough to read its
 * token user (identification level is enough, which is what apcctl asks for).
 *
 * Threads: apc_pipesec_build and apc_pipesec_free may run on any thread (no shared state).
 * apc_pipesec_client_name impersonates on the CALLING thread (the pipe thread), and reverts
 * before it returns.
 */
#ifndef APC_PIPESEC_H
#define APC_PIPESEC_H

#include <windows.h>

#include <stddef.h>

/* The access right a control_allow account gets: FILE_GENERIC_READ | FILE_GENERIC_WRITE without
   FILE_CREATE_PIPE_INSTANCE (0x120089 | 0x120116 = 0x12019f, minus 0x4). */
#define APC_PIPESEC_CLIENT_ACCESS \
    ((DWORD)((FILE_GENERIC_READ | FILE_GENERIC_WRITE) & ~(DWORD)FILE_CREATE_PIPE_INSTANCE))

/* The part of every pipe descriptor that does not depend on the configuration. */
#define APC_PIPESEC_BASE_SDDL "O:BAD:P(A;;FA;;;SY)(A;;FA;;;BA)"

/* A built security descriptor and the SDDL it was made from. */
typedef struct apc_pipesec {
    PSECURITY_DESCRIPTOR sd; /* self-relative, LocalAlloc'd by the conversion API */
    char *sddl;              /* UTF-8, canonical form (as the system prints it back) */
} apc_pipesec_t;

/*
 * Builds the pipe's security descriptor for the NULL-terminated account list allow (NULL or
 * empty = SYSTEM and Administrators only). Each name is resolved with LookupAccountNameW on
 * this machine; names that resolve to SYSTEM, Administrators or an earlier entry add no ACE.
 * On success returns 0 and fills *out (free it with apc_pipesec_free); out->sddl is the
 * canonical SDDL, e.g. "O:BAD:P(A;;FA;;;SY)(A;;FA;;;BA)(A;;0x12019b;;;BU)" for {"Users"},
 * which is exactly what reading the live pipe's owner and DACL back yields.
 * Errors: APC_EINVAL for an account that does not resolve (err: `service.control_allow:
 * unknown account "bob": <system text> (error 1332)`) or that is not a user, group or alias;
 * APC_ENOMEM; the translated Win32 error of the conversion APIs. On failure *out is zeroed.
 */
int apc_pipesec_build(const char *const *allow, apc_pipesec_t *out, char *err, size_t errsz);

/* Frees what apc_pipesec_build filled and zeroes it. Accepts NULL and a zeroed struct. */
void apc_pipesec_free(apc_pipesec_t *sec);

/*
 * Reads the owner and DACL of the kernel object behind h (a pipe handle opened with
 * READ_CONTROL, the server end or a client end) with GetSecurityInfo and stores them as a
 * malloc'd UTF-8 SDDL string in *out. For tests and diagnostics. Returns 0, APC_EINVAL,
 * APC_ENOMEM or the translated Win32 error.
 */
int apc_pipesec_read_sddl(HANDLE h, char **out, char *err, size_t errsz);

/*
 * Stores in *out the malloc'd "DOMAIN\user" account of the client connected to the server end
 * pipe, which must have read at least one message from it (Windows lets a server impersonate
 * only after that). Impersonates the client on the calling thread (ImpersonateNamedPipeClient
 * -> OpenThreadToken(TOKEN_QUERY, OpenAsSelf) -> GetTokenInformation(TokenUser) ->
 * LookupAccountSidW) and always reverts. If RevertToSelf fails the thread would keep running
 * with the client's identity, so the process is terminated instead (exit code
 * APC_PIPESEC_REVERT_EXIT). An account the system cannot name is returned as its SID string
 * ("S-1-5-21-..."). Returns 0, APC_ENOMEM or the translated Win32 error (e.g. for a client
 * connected with anonymous impersonation). Runs on the pipe thread.
 */
int apc_pipesec_client_name(HANDLE pipe, char **out, char *err, size_t errsz);

/* The exit code of a process killed because RevertToSelf failed (ERROR_CANNOT_IMPERSONATE). */
#define APC_PIPESEC_REVERT_EXIT 1368u

#endif /* APC_PIPESEC_H */
