/*
 * basicmath: a MiBench-style kernel. Solves cubic equations, takes integer
 * square roots and converts between degrees and radians over a small fixed
 * loop, then prints a checksum of all the results.
 */
#include <math.h>
#include <stdio.h>

#ifndef M_PI
#define M_PI 3.14159265358979323846
#endif

/* Real roots of a*x^3 + b*x^2 + c*x + d = 0 (a != 0). Returns their count. */
static int solve_cubic(double a, double b, double c, double d, double x[3]) {
    double a1 = b / a, a2 = c / a, a3 = d / a;
    double q = (a1 * a1 - 3.0 * a2) / 9.0;
    double r = (2.0 * a1 * a1 * a1 - 9.0 * a1 * a2 + 27.0 * a3) / 54.0;
    double r2_q3 = r * r - q * q * q;
    if (q <= 0.0 && r2_q3 <= 0.0) {
        /* q == 0 and r == 0: one triple root. */
        x[0] = x[1] = x[2] = -a1 / 3.0;
        return 3;
    }
    if (r2_q3 <= 0.0) {
        double ratio = r / sqrt(q * q * q);
        /* Rounding can push the ratio a hair outside acos's domain. */
        ratio = ratio > 1.0 ? 1.0 : (ratio < -1.0 ? -1.0 : ratio);
        double theta = acos(ratio);
        double s = -2.0 * sqrt(q);
        x[0] = s * cos(theta / 3.0) - a1 / 3.0;
        x[1] = s * cos((theta + 2.0 * M_PI) / 3.0) - a1 / 3.0;
        x[2] = s * cos((theta + 4.0 * M_PI) / 3.0) - a1 / 3.0;
        return 3;
    }
    double t = pow(sqrt(r2_q3) + fabs(r), 1.0 / 3.0);
    x[0] = (r < 0.0 ? 1.0 : -1.0) * (t + q / t) - a1 / 3.0;
    return 1;
}

/* Integer square root by the bit-by-bit method: floor(sqrt(n)). */
static unsigned long isqrt(unsigned long n) {
    unsigned long root = 0;
    unsigned long bit = 1UL << (sizeof(unsigned long) * 8 - 2);
    while (bit > n) {
        bit >>= 2;
    }
    while (bit != 0) {
        if (n >= root + bit) {
            n -= root + bit;
            root = (root >> 1) + bit;
        } else {
            root >>= 1;
        }
        bit >>= 2;
    }
    return root;
}

static double deg2rad(double deg) { return deg * M_PI / 180.0; }
static double rad2deg(double rad) { return rad * 180.0 / M_PI; }

int main(void) {
    double sum = 0.0;
    unsigned long isum = 0;
    double x[3];

    for (int a = 1; a <= 10; a++) {
        for (int b = -10; b <= 10; b += 2) {
            for (int c = -5; c <= 5; c++) {
                for (int d = -6; d <= 6; d += 3) {
                    int n = solve_cubic(a, b, c, d, x);
                    for (int i = 0; i < n; i++) {
                        sum += x[i];
                    }
                }
            }
        }
    }

    for (unsigned long i = 0; i < 100000; i++) {
        isum += isqrt(i);
    }
    isum += isqrt(0x3fed0169UL); /* 32767^2 = 1073676289 */

    for (double deg = 0.0; deg <= 360.0; deg += 0.01) {
        sum += rad2deg(deg2rad(deg)) - deg + deg2rad(deg);
    }

    printf("basicmath checksum: %.6f %lu\n", sum, isum);
    return 0;
}
