/* Helpers shared by the unit tests. */
#ifndef KANARIA_TESTUTIL_H
#define KANARIA_TESTUTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

/* The repository's top folder (from KANARIA_SOURCE_DIR, set by ctest). */
const char *kn_test_source_dir(void);

/* A new empty temporary directory (caller frees the string; kn_test_rmtree removes it). */
char *kn_test_tmpdir(void);
void kn_test_rmtree(const char *dir);

/* Write `content` to dir/relpath, creating parent folders. */
void kn_test_write(const char *dir, const char *relpath, const char *content);

/* Run `git -C dir ARGS` (printf-style) as a fixed test identity, output discarded; fail the test
 * when git fails. */
void kn_test_git(const char *dir, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
