/*
 * qsort: sorts 10,000 pseudo-random ints (fixed-seed LCG) with the C
 * library's qsort, checks the order and prints a position-weighted checksum.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define N 10000

static int cmp_int(const void *a, const void *b) {
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

int main(void) {
    static int v[N];
    uint32_t seed = 42;
    for (int i = 0; i < N; i++) {
        seed = seed * 1664525u + 1013904223u;
        v[i] = (int)(seed >> 1) - (1 << 30);
    }

    qsort(v, N, sizeof v[0], cmp_int);

    uint64_t checksum = 0;
    for (int i = 0; i < N; i++) {
        if (i > 0 && v[i - 1] > v[i]) {
            fprintf(stderr, "qsort: not sorted at %d\n", i);
            return 1;
        }
        checksum = checksum * 31 + (uint32_t)v[i];
    }
    printf("qsort checksum: %016llx min=%d max=%d\n",
           (unsigned long long)checksum, v[0], v[N - 1]);
    return 0;
}
