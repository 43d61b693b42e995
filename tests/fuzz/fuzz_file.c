/* The fuzz targets' in-memory file (see fuzz_file.h). */
#define _GNU_SOURCE /* memfd_create */
#include "fuzz_file.h"

#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

static int kn_fuzz_fd = -1;

void kn_fuzz_file_init(char path[KN_FUZZ_PATH_MAX])
{
    kn_fuzz_fd = memfd_create("kanaria-fuzz", MFD_CLOEXEC);
    if (kn_fuzz_fd < 0) {
        perror("fuzz: memfd_create");
        abort();
    }
    snprintf(path, KN_FUZZ_PATH_MAX, "/proc/self/fd/%d", kn_fuzz_fd);
}

void kn_fuzz_file_set(const uint8_t *data, size_t size)
{
    size_t done = 0;

    if (ftruncate(kn_fuzz_fd, 0) < 0) {
        perror("fuzz: ftruncate");
        abort();
    }
    while (done < size) {
        ssize_t n = pwrite(kn_fuzz_fd, data + done, size - done, (off_t)done);
        if (n <= 0) {
            perror("fuzz: pwrite");
            abort();
        }
        done += (size_t)n;
    }
}
