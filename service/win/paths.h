/*
 * paths.h - where apcsvc.exe finds its configuration by default, and how it creates its data
 * folders (history database folder, run output folder, log folder) with a protected DACL.
 *
 * Why this way: the service runs as LocalSystem and writes job output and history that
 * ordinary users may read but must not change. Folders the service creates get an explicit,
 * protected DACL (APC_PATHS_DATA_SDDL) so that what ProgramData would otherwise pass down
 * (on Windows, Users may create files there) never applies. A folder that already exists is
 * left as it is: an operator who prepared it chose its DACL.
 *
 * Thread safety: no shared state; any thread (the service main thread calls these at start).
 */
#ifndef APC_PATHS_H
#define APC_PATHS_H

#include <windows.h>

#include <stddef.h>

/*
 * The DACL of every data folder the service creates, as SDDL: protected from the parent's
 * ACEs (P); SYSTEM and Administrators full control; Users read & execute (0x1200a9 =
 * FILE_GENERIC_READ | FILE_GENERIC_EXECUTE); every ACE inherited by subfolders and files
 * (OICI).
 */
#define APC_PATHS_DATA_SDDL L"D:P(A;OICI;FA;;;SY)(A;OICI;FA;;;BA)(A;OICI;0x1200a9;;;BU)"

/* The default configuration file, below the ProgramData folder. */
#define APC_PATHS_DEFAULT_SUBDIR "ApcSched"
#define APC_PATHS_DEFAULT_CONFIG "apcsvc.json"

/*
 * Sets *out to the malloc'd UTF-8 path %ProgramData%\ApcSched\apcsvc.json. The ProgramData
 * folder comes from SHGetKnownFolderPath(FOLDERID_ProgramData), or, if that fails, from the
 * ProgramData environment variable. Returns 0, APC_ENOTFOUND (neither source answers, reason
 * in err) or APC_ENOMEM. The caller frees *out.
 */
int apc_paths_default_config(char **out, char *err, size_t errsz);

/*
 * Sets *out to the malloc'd absolute form of path (GetFullPathNameW: relative to the current
 * directory, "." and ".." resolved). The service converts the --config path once at start so
 * that the engine, the log and the messages all name the same file. Returns 0, APC_EINVAL
 * (NULL/empty/invalid UTF-8 path), APC_ENOMEM or the translated Win32 error.
 */
int apc_paths_absolute(const char *path, char **out, char *err, size_t errsz);

/*
 * Creates the folder path (UTF-8) and every missing parent, each with the DACL
 * APC_PATHS_DATA_SDDL. A folder that exists already is not changed. Sets *created (if not
 * NULL) to 1 when path itself was created by this call, 0 when it existed. Returns 0,
 * APC_EINVAL (NULL/empty path, or path names an existing file that is not a folder, message
 * `"X" exists and is not a folder`), APC_ENOMEM or the translated Win32 error
 * (`creating folder "X": <system text> (error N)`).
 */
int apc_paths_make_data_dir(const char *path, int *created, char *err, size_t errsz);

/*
 * Creates the folder that holds the file path (e.g. the history database), as
 * apc_paths_make_data_dir does. A bare file name (no folder part) needs nothing: returns 0.
 */
int apc_paths_make_parent_dir(const char *file_path, char *err, size_t errsz);

/*
 * Reads the DACL of an existing file or folder back as SDDL ("D:P(A;OICI;FA;;;SY)...") into
 * a malloc'd UTF-8 string in *out. Used by the tests and by diagnostics. Returns 0, APC_EINVAL,
 * APC_ENOMEM or the translated Win32 error.
 */
int apc_paths_dacl_sddl(const char *path, char **out, char *err, size_t errsz);

#endif /* APC_PATHS_H */
