/*
 * c-command: a WASI preview 1 command for Weft, written in C.
 *
 * Reads all of stdin and greets it: "hello, <stdin>!" on stdout
 * ("hello, world!" when stdin is empty), plus "greeted <n> bytes" on stderr.
 *
 * Build: clang --target=wasm32-wasi -O2 hello.c -o c-command.wasm
 */
#include <stdio.h>
#include <stdlib.h>

int main(void) {
    size_t len = 0, cap = 4096;
    char *buf = malloc(cap);
    if (buf == NULL) {
        return 1;
    }
    for (;;) {
        if (len == cap) {
            char *grown = realloc(buf, cap * 2);
            if (grown == NULL) {
                free(buf);
                return 1;
            }
            buf = grown;
            cap *= 2;
        }
        size_t n = fread(buf + len, 1, cap - len, stdin);
        len += n;
        if (n == 0) {
            break;
        }
    }
    if (ferror(stdin)) {
        free(buf);
        return 1;
    }

    fputs("hello, ", stdout);
    if (len == 0) {
        fputs("world", stdout);
    } else {
        fwrite(buf, 1, len, stdout);
    }
    fputs("!", stdout);
    if (fflush(stdout) != 0) {
        free(buf);
        return 1;
    }

    fprintf(stderr, "greeted %zu bytes\n", len);
    free(buf);
    return 0;
}
