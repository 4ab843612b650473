/*
 * sha: SHA-1 (FIPS 180-4) of a generated 64 KiB buffer, printed in hex.
 * With an argument, hashes that string instead (self-check:
 * `sha abc` prints a9993e364706816aba3e25717850c26c9cd0d89d).
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

typedef struct {
    uint32_t h[5];
    uint64_t length; /* bytes hashed so far */
    unsigned char block[64];
    size_t used;
} sha1_ctx;

#define ROL(x, n) (((x) << (n)) | ((x) >> (32 - (n))))

static void sha1_init(sha1_ctx *c) {
    c->h[0] = 0x67452301u;
    c->h[1] = 0xEFCDAB89u;
    c->h[2] = 0x98BADCFEu;
    c->h[3] = 0x10325476u;
    c->h[4] = 0xC3D2E1F0u;
    c->length = 0;
    c->used = 0;
}

static void sha1_block(sha1_ctx *c, const unsigned char *p) {
    uint32_t w[80];
    for (int t = 0; t < 16; t++) {
        w[t] = (uint32_t)p[4 * t] << 24 | (uint32_t)p[4 * t + 1] << 16 |
               (uint32_t)p[4 * t + 2] << 8 | (uint32_t)p[4 * t + 3];
    }
    for (int t = 16; t < 80; t++) {
        w[t] = ROL(w[t - 3] ^ w[t - 8] ^ w[t - 14] ^ w[t - 16], 1);
    }
    uint32_t a = c->h[0], b = c->h[1], d = c->h[3], e = c->h[4], cc = c->h[2];
    for (int t = 0; t < 80; t++) {
        uint32_t f, k;
        if (t < 20) {
            f = (b & cc) | (~b & d);
            k = 0x5A827999u;
        } else if (t < 40) {
            f = b ^ cc ^ d;
            k = 0x6ED9EBA1u;
        } else if (t < 60) {
            f = (b & cc) | (b & d) | (cc & d);
            k = 0x8F1BBCDCu;
        } else {
            f = b ^ cc ^ d;
            k = 0xCA62C1D6u;
        }
        uint32_t tmp = ROL(a, 5) + f + e + k + w[t];
        e = d;
        d = cc;
        cc = ROL(b, 30);
        b = a;
        a = tmp;
    }
    c->h[0] += a;
    c->h[1] += b;
    c->h[2] += cc;
    c->h[3] += d;
    c->h[4] += e;
}

static void sha1_update(sha1_ctx *c, const unsigned char *p, size_t n) {
    c->length += n;
    while (n > 0) {
        size_t take = 64 - c->used;
        if (take > n) {
            take = n;
        }
        memcpy(c->block + c->used, p, take);
        c->used += take;
        p += take;
        n -= take;
        if (c->used == 64) {
            sha1_block(c, c->block);
            c->used = 0;
        }
    }
}

static void sha1_final(sha1_ctx *c, unsigned char out[20]) {
    uint64_t bits = c->length * 8;
    unsigned char pad = 0x80;
    sha1_update(c, &pad, 1);
    pad = 0;
    while (c->used != 56) {
        sha1_update(c, &pad, 1);
    }
    unsigned char len[8];
    for (int i = 0; i < 8; i++) {
        len[i] = (unsigned char)(bits >> (56 - 8 * i));
    }
    sha1_update(c, len, 8);
    for (int i = 0; i < 20; i++) {
        out[i] = (unsigned char)(c->h[i / 4] >> (24 - 8 * (i % 4)));
    }
}

int main(int argc, char **argv) {
    static unsigned char buf[64 * 1024];
    size_t len = sizeof buf;
    const unsigned char *data = buf;

    if (argc > 1) {
        data = (const unsigned char *)argv[1];
        len = strlen(argv[1]);
    } else {
        for (size_t i = 0; i < sizeof buf; i++) {
            buf[i] = (unsigned char)(i * 31u + (i >> 8));
        }
    }

    sha1_ctx c;
    unsigned char digest[20];
    sha1_init(&c);
    sha1_update(&c, data, len);
    sha1_final(&c, digest);
    for (int i = 0; i < 20; i++) {
        printf("%02x", digest[i]);
    }
    printf("\n");
    return 0;
}
