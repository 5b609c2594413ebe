/*
 * full_vfs.h - a SQLite VFS shim for tests that makes the disk "full" on demand: it wraps the
 * default VFS, and while full_vfs_set_full(1) is in effect every xWrite, xTruncate and xSync
 * of every file it opened returns SQLITE_FULL (counted in full_vfs_refusals()). Everything
 * else is passed to the wrapped VFS unchanged, so the database files are real files.
 *
 * Why a shim and not a small filesystem: it works the same natively and under Wine, switches
 * on and off at an exact point of a test, and needs no privileges (https://sqlite.org/c3ref/vfs.html,
 * https://sqlite.org/c3ref/io_methods.html; SQLite's own test_vfs.c does the same).
 *
 * full_vfs_install() registers the shim as the DEFAULT VFS of the process (makeDflt = 1), so
 * code that opens databases with sqlite3_open_v2(..., NULL) - apc_history_open - uses it
 * without knowing. The flag is a plain volatile int: tests set it on their own thread while
 * SQLite may run on another (a history thread); a stale read only moves the switch by one
 * call, which no test depends on. Thread: install once, from the test's main thread, before
 * any connection is opened.
 */
#ifndef APC_TEST_FULL_VFS_H
#define APC_TEST_FULL_VFS_H

#include <sqlite3.h>
#include <string.h>

/* A file of the shim: our header, then the wrapped VFS's file (szOsFile bytes). */
typedef struct full_file {
    sqlite3_file base;  /* pMethods = &full_io once the real file is open */
    sqlite3_file *real; /* points just behind this struct */
} full_file_t;

static sqlite3_vfs *full_real_vfs;
static volatile int full_flag;
static volatile long full_refused;

#define FULL_REAL(f) (((full_file_t *)(f))->real)

static int full_refuse(void)
{
    full_refused++;
    return SQLITE_FULL;
}

static int full_close(sqlite3_file *f)
{
    return FULL_REAL(f)->pMethods->xClose(FULL_REAL(f));
}

static int full_read(sqlite3_file *f, void *buf, int amt, sqlite3_int64 off)
{
    return FULL_REAL(f)->pMethods->xRead(FULL_REAL(f), buf, amt, off);
}

static int full_write(sqlite3_file *f, const void *buf, int amt, sqlite3_int64 off)
{
    if (full_flag)
        return full_refuse();
    return FULL_REAL(f)->pMethods->xWrite(FULL_REAL(f), buf, amt, off);
}

static int full_truncate(sqlite3_file *f, sqlite3_int64 size)
{
    if (full_flag)
        return full_refuse();
    return FULL_REAL(f)->pMethods->xTruncate(FULL_REAL(f), size);
}

static int full_sync(sqlite3_file *f, int flags)
{
    if (full_flag)
        return full_refuse();
    return FULL_REAL(f)->pMethods->xSync(FULL_REAL(f), flags);
}

static int full_file_size(sqlite3_file *f, sqlite3_int64 *size)
{
    return FULL_REAL(f)->pMethods->xFileSize(FULL_REAL(f), size);
}

static int full_lock(sqlite3_file *f, int level)
{
    return FULL_REAL(f)->pMethods->xLock(FULL_REAL(f), level);
}

static int full_unlock(sqlite3_file *f, int level)
{
    return FULL_REAL(f)->pMethods->xUnlock(FULL_REAL(f), level);
}

static int full_check_reserved(sqlite3_file *f, int *out)
{
    return FULL_REAL(f)->pMethods->xCheckReservedLock(FULL_REAL(f), out);
}

static int full_file_control(sqlite3_file *f, int op, void *arg)
{
    return FULL_REAL(f)->pMethods->xFileControl(FULL_REAL(f), op, arg);
}

static int full_sector_size(sqlite3_file *f)
{
    return FULL_REAL(f)->pMethods->xSectorSize(FULL_REAL(f));
}

static int full_device_chars(sqlite3_file *f)
{
    return FULL_REAL(f)->pMethods->xDeviceCharacteristics(FULL_REAL(f));
}

/* Version 2 and 3 methods exist only when the wrapped file has them (checked per call). */
static int full_shm_map(sqlite3_file *f, int pg, int pgsz, int extend, void volatile **pp)
{
    const sqlite3_io_methods *m = FULL_REAL(f)->pMethods;

    if (m->iVersion < 2 || m->xShmMap == NULL)
        return SQLITE_IOERR;
    return m->xShmMap(FULL_REAL(f), pg, pgsz, extend, pp);
}

static int full_shm_lock(sqlite3_file *f, int offset, int n, int flags)
{
    return FULL_REAL(f)->pMethods->xShmLock(FULL_REAL(f), offset, n, flags);
}

static void full_shm_barrier(sqlite3_file *f)
{
    FULL_REAL(f)->pMethods->xShmBarrier(FULL_REAL(f));
}

static int full_shm_unmap(sqlite3_file *f, int del)
{
    return FULL_REAL(f)->pMethods->xShmUnmap(FULL_REAL(f), del);
}

static int full_fetch(sqlite3_file *f, sqlite3_int64 off, int amt, void **pp)
{
    const sqlite3_io_methods *m = FULL_REAL(f)->pMethods;

    if (m->iVersion < 3 || m->xFetch == NULL) {
        *pp = NULL; /* "no mapping": SQLite reads with xRead instead */
        return SQLITE_OK;
    }
    return m->xFetch(FULL_REAL(f), off, amt, pp);
}

static int full_unfetch(sqlite3_file *f, sqlite3_int64 off, void *p)
{
    const sqlite3_io_methods *m = FULL_REAL(f)->pMethods;

    if (m->iVersion < 3 || m->xUnfetch == NULL)
        return SQLITE_OK;
    return m->xUnfetch(FULL_REAL(f), off, p);
}

static const sqlite3_io_methods full_io_v3 = {3,
                                              full_close,
                                              full_read,
                                              full_write,
                                              full_truncate,
                                              full_sync,
                                              full_file_size,
                                              full_lock,
                                              full_unlock,
                                              full_check_reserved,
                                              full_file_control,
                                              full_sector_size,
                                              full_device_chars,
                                              full_shm_map,
                                              full_shm_lock,
                                              full_shm_barrier,
                                              full_shm_unmap,
                                              full_fetch,
                                              full_unfetch};

/* The same without shared memory: for wrapped files that have none (version 1). */
static const sqlite3_io_methods full_io_v1 = {1,
                                              full_close,
                                              full_read,
                                              full_write,
                                              full_truncate,
                                              full_sync,
                                              full_file_size,
                                              full_lock,
                                              full_unlock,
                                              full_check_reserved,
                                              full_file_control,
                                              full_sector_size,
                                              full_device_chars,
                                              NULL,
                                              NULL,
                                              NULL,
                                              NULL,
                                              NULL,
                                              NULL};

static int full_open(sqlite3_vfs *vfs, const char *name, sqlite3_file *f, int flags, int *out)
{
    full_file_t *ff = (full_file_t *)f;
    int rc;

    (void)vfs;
    memset(ff, 0, sizeof *ff);
    ff->real = (sqlite3_file *)(ff + 1);
    rc = full_real_vfs->xOpen(full_real_vfs, name, ff->real, flags, out);
    /* The contract: xClose is called only when pMethods is non-NULL, so set it exactly when
       the wrapped open left the real file needing a close. */
    if (ff->real->pMethods == NULL)
        ff->base.pMethods = NULL;
    else
        ff->base.pMethods = ff->real->pMethods->iVersion >= 2 ? &full_io_v3 : &full_io_v1;
    return rc;
}

static int full_delete(sqlite3_vfs *vfs, const char *name, int sync_dir)
{
    (void)vfs;
    return full_real_vfs->xDelete(full_real_vfs, name, sync_dir);
}

static int full_access(sqlite3_vfs *vfs, const char *name, int flags, int *out)
{
    (void)vfs;
    return full_real_vfs->xAccess(full_real_vfs, name, flags, out);
}

static int full_full_pathname(sqlite3_vfs *vfs, const char *name, int n, char *out)
{
    (void)vfs;
    return full_real_vfs->xFullPathname(full_real_vfs, name, n, out);
}

static void *full_dlopen(sqlite3_vfs *vfs, const char *name)
{
    (void)vfs;
    return full_real_vfs->xDlOpen(full_real_vfs, name);
}

static void full_dlerror(sqlite3_vfs *vfs, int n, char *msg)
{
    (void)vfs;
    full_real_vfs->xDlError(full_real_vfs, n, msg);
}

static void (*full_dlsym(sqlite3_vfs *vfs, void *lib, const char *sym))(void)
{
    (void)vfs;
    return full_real_vfs->xDlSym(full_real_vfs, lib, sym);
}

static void full_dlclose(sqlite3_vfs *vfs, void *lib)
{
    (void)vfs;
    full_real_vfs->xDlClose(full_real_vfs, lib);
}

static int full_randomness(sqlite3_vfs *vfs, int n, char *out)
{
    (void)vfs;
    return full_real_vfs->xRandomness(full_real_vfs, n, out);
}

static int full_sleep(sqlite3_vfs *vfs, int us)
{
    (void)vfs;
    return full_real_vfs->xSleep(full_real_vfs, us);
}

static int full_current_time(sqlite3_vfs *vfs, double *out)
{
    (void)vfs;
    return full_real_vfs->xCurrentTime(full_real_vfs, out);
}

static int full_get_last_error(sqlite3_vfs *vfs, int n, char *out)
{
    (void)vfs;
    return full_real_vfs->xGetLastError != NULL
               ? full_real_vfs->xGetLastError(full_real_vfs, n, out)
               : 0;
}

static int full_current_time64(sqlite3_vfs *vfs, sqlite3_int64 *out)
{
    (void)vfs;
    return full_real_vfs->xCurrentTimeInt64(full_real_vfs, out);
}

static sqlite3_vfs full_vfs;

/*
 * Registers the shim as the default VFS, wrapping the default one. Returns SQLITE_OK or the
 * SQLite error (SQLITE_ERROR when there is no default VFS). Calling it again does nothing.
 */
static int full_vfs_install(void)
{
    int rc;

    if (full_real_vfs != NULL)
        return SQLITE_OK;
    rc = sqlite3_initialize();
    if (rc != SQLITE_OK)
        return rc;
    full_real_vfs = sqlite3_vfs_find(NULL);
    if (full_real_vfs == NULL)
        return SQLITE_ERROR;
    memset(&full_vfs, 0, sizeof full_vfs);
    /* Version 2 covers everything SQLite calls on a default VFS here; xCurrentTimeInt64 is the
       clock it prefers. The system-call hooks of version 3 are the wrapped VFS's own business. */
    full_vfs.iVersion = full_real_vfs->iVersion >= 2 ? 2 : 1;
    full_vfs.szOsFile = (int)sizeof(full_file_t) + full_real_vfs->szOsFile;
    full_vfs.mxPathname = full_real_vfs->mxPathname;
    full_vfs.zName = "apc_full";
    full_vfs.xOpen = full_open;
    full_vfs.xDelete = full_delete;
    full_vfs.xAccess = full_access;
    full_vfs.xFullPathname = full_full_pathname;
    full_vfs.xDlOpen = full_dlopen;
    full_vfs.xDlError = full_dlerror;
    full_vfs.xDlSym = full_dlsym;
    full_vfs.xDlClose = full_dlclose;
    full_vfs.xRandomness = full_randomness;
    full_vfs.xSleep = full_sleep;
    full_vfs.xCurrentTime = full_current_time;
    full_vfs.xGetLastError = full_get_last_error;
    if (full_vfs.iVersion >= 2)
        full_vfs.xCurrentTimeInt64 = full_current_time64;
    rc = sqlite3_vfs_register(&full_vfs, 1);
    if (rc != SQLITE_OK)
        full_real_vfs = NULL;
    return rc;
}

/* Makes the disk full (1) or not (0) for every file the shim opened. */
static void full_vfs_set_full(int on)
{
    full_flag = on;
}

/* How many calls the shim refused since it was installed. */
static long full_vfs_refusals(void)
{
    return full_refused;
}

#endif /* APC_TEST_FULL_VFS_H */
