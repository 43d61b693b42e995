/*
 * The fuzz targets' one in-memory file, for loaders that take a path (kanaria.yaml, a webhook
 * secret file): a memfd named by /proc/self/fd/N, so that no run touches the disk and nothing
 * is left behind.
 */
#ifndef KANARIA_FUZZ_FILE_H
#define KANARIA_FUZZ_FILE_H

#include <stddef.h>
#include <stdint.h>

#define KN_FUZZ_PATH_MAX 64

/* Create the file and write its path into path; aborts when that fails. */
void kn_fuzz_file_init(char path[KN_FUZZ_PATH_MAX]);

/* Make the file hold exactly data[0..size); aborts when that fails. */
void kn_fuzz_file_set(const uint8_t *data, size_t size);

#endif /* KANARIA_FUZZ_FILE_H */
