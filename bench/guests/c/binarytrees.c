/* binarytrees, after the Computer Language Benchmarks Game's task: allocate
 * and walk perfect binary trees of several depths. The depth comes from
 * argv[1], as `binarytrees 10` is run there, so the program runs as a
 * function unchanged when its arguments are given at deploy (`--arg 10`). */
#include <stdio.h>
#include <stdlib.h>

struct node {
    struct node *left, *right;
};

static struct node *make(int depth) {
    struct node *n = malloc(sizeof *n);
    if (n == NULL) {
        fputs("binarytrees: out of memory\n", stderr);
        exit(3);
    }
    if (depth > 0) {
        n->left = make(depth - 1);
        n->right = make(depth - 1);
    } else {
        n->left = n->right = NULL;
    }
    return n;
}

static long check(const struct node *n) {
    return 1 + (n->left ? check(n->left) + check(n->right) : 0);
}

static void drop(struct node *n) {
    if (n->left) {
        drop(n->left);
        drop(n->right);
    }
    free(n);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fputs("usage: binarytrees DEPTH\n", stderr);
        return 2;
    }
    int n = atoi(argv[1]);
    if (n < 0 || n > 21) {
        fprintf(stderr, "binarytrees: depth %s is not between 0 and 21\n", argv[1]);
        return 2;
    }
    const int min_depth = 4;
    const int max_depth = n > min_depth + 2 ? n : min_depth + 2;

    struct node *stretch = make(max_depth + 1);
    printf("stretch tree of depth %d\t check: %ld\n", max_depth + 1, check(stretch));
    drop(stretch);

    struct node *long_lived = make(max_depth);
    for (int depth = min_depth; depth <= max_depth; depth += 2) {
        long iterations = 1L << (max_depth - depth + min_depth);
        long sum = 0;
        for (long i = 0; i < iterations; i++) {
            struct node *t = make(depth);
            sum += check(t);
            drop(t);
        }
        printf("%ld\t trees of depth %d\t check: %ld\n", iterations, depth, sum);
    }
    printf("long lived tree of depth %d\t check: %ld\n", max_depth, check(long_lived));
    drop(long_lived);
    return 0;
}
