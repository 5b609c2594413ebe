/*
 * cfgacl.h - refuses a configuration file that accounts other than the trusted ones may
 * change, as cron refuses a crontab that others may write. Whoever can change apcsvc.json
 * decides which programs LocalSystem runs, so the file must be as well protected as the
 * service account itself.
 *
 * Trusted: LocalSystem (S-1-5-18), BUILTIN\Administrators (S-1-5-32-544), TrustedInstaller
 * (NT SERVICE\TrustedInstaller) and the account this process runs as (its token user: SYSTEM
 * for the installed service, NT SERVICE\<name> or a custom account when an administrator
 * chose one; that account can change everything the service can anyway).
 *
 * A file is refused when: it has a NULL DACL; its owner is not trusted (an owner may always
 * rewrite the DACL); or an effective ACCESS_ALLOWED ACE gives an untrusted SID one of
 * FILE_WRITE_DATA, FILE_APPEND_DATA, DELETE, WRITE_DAC, WRITE_OWNER (generic bits mapped with
 * the file generic mapping, so GENERIC_WRITE and GENERIC_ALL count). Its folder is refused
 * for the same owner and NULL-DACL rules and for FILE_DELETE_CHILD, DELETE, WRITE_DAC and
 * WRITE_OWNER: with those someone could delete or rename the file (or the folder) and put
 * their own in its place. FILE_ADD_FILE and FILE_ADD_SUBDIRECTORY on the folder (which
 * C:\ProgramData gives Users) are accepted: they cannot replace an existing file. Folders
 * above the file's own folder are not checked.
 *
 * Thread: any (no state); the service main thread at start, the engine thread at reload.
 */
#ifndef APC_CFGACL_H
#define APC_CFGACL_H

#include <windows.h>

#include <stddef.h>

/* What the service does about an insecure config file (apcsvc.exe --allow-insecure-config). */
#define APC_CFGACL_OFF 0     /* no check (tests that drive the engine alone) */
#define APC_CFGACL_ENFORCE 1 /* refuse the file: the product's default */
#define APC_CFGACL_WARN 2    /* --allow-insecure-config: use it, but warn */

/*
 * Checks one security descriptor (it must hold the owner and the DACL). is_folder selects
 * the folder rules; path is only used in the message (UTF-8); self_sid is one more trusted
 * SID (the process' user; NULL for none). Returns 0 if the object is protected, APC_EDENIED
 * with the first finding in err ("PATH: refused: ACCOUNT may change this file (ACE grants
 * FILE_WRITE_DATA|FILE_APPEND_DATA); ..." with the icacls command that fixes it), APC_EINVAL
 * for a descriptor that cannot be read (message in err). Any thread.
 */
int apc_cfgacl_check_sd(PSECURITY_DESCRIPTOR sd, int is_folder, const char *path, PSID self_sid,
                        char *err, size_t errsz);

/*
 * Reads the owner and DACL of the file at path (UTF-8, absolute) and of its folder and
 * checks both as above, trusting the process' own user. Returns 0 when both are protected
 * and also when the file does not exist (loading it then reports that in its own words),
 * APC_EDENIED with the finding in err, or APC_ESYS / APC_ENOMEM when the descriptors cannot
 * be read (message names the path and the system's error). Any thread.
 */
int apc_cfgacl_check_file(const char *path, char *err, size_t errsz);

#endif /* APC_CFGACL_H */
