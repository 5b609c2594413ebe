/*
 * test_fs.h - file-system helpers shared by the runtime tests (test code only).
 */
#ifndef APC_TEST_FS_H
#define APC_TEST_FS_H

#include <windows.h>

#include <wchar.h>

/*
 * Deletes a folder and everything in it. Only for the test's own temporary folder; best
 * effort (a file still open elsewhere stays, and so does its folder).
 */
static void test_remove_tree(const wchar_t *dir)
{
    wchar_t pattern[MAX_PATH * 2];
    WIN32_FIND_DATAW fd;
    HANDLE h;

    swprintf(pattern, MAX_PATH * 2, L"%ls\\*", dir);
    h = FindFirstFileW(pattern, &fd);
    if (h != INVALID_HANDLE_VALUE) {
        do {
            wchar_t sub[MAX_PATH * 2];
            if (wcscmp(fd.cFileName, L".") == 0 || wcscmp(fd.cFileName, L"..") == 0)
                continue;
            swprintf(sub, MAX_PATH * 2, L"%ls\\%ls", dir, fd.cFileName);
            if (fd.dwFileAttributes & FILE_ATTRIBUTE_DIRECTORY)
                test_remove_tree(sub);
            else
                DeleteFileW(sub);
        } while (FindNextFileW(h, &fd));
        FindClose(h);
    }
    RemoveDirectoryW(dir);
}

#endif /* APC_TEST_FS_H */
