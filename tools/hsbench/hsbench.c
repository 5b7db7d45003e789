/*
 * hsbench: the vectorscan reference for MIRA's symptom matcher benchmark.
 *
 * usage: hsbench PATTERNS CORPUS CHUNK RUNS
 *
 * PATTERNS has one pattern per line, "kind<TAB>hex" (kind: lit, nocase, hex,
 * bol), as written by tools/hsbench/gen. Every pattern is compiled as an
 * escaped literal regex; nocase sets HS_FLAG_CASELESS, bol prefixes "^" with
 * HS_FLAG_MULTILINE. CORPUS is cut into CHUNK-byte blocks (0: the whole
 * corpus in one call), each scanned in block mode, counting every match.
 * CHUNK "lp" reads CORPUS as length-prefixed records (4-byte little-endian
 * length, then the bytes; tools/hsbench/payloads writes a capture's
 * scanned payloads so) and scans each record as one block.
 * Prints one line per run and a summary line:
 *   hsbench patterns=N chunk=C compile_ms=X matches=M mbps_median=Y mbps_cpu_median=Z
 * mbps_cpu divides by the thread's CPU time (CLOCK_THREAD_CPUTIME_ID), which
 * keeps the figure meaningful on a machine shared with other work.
 */
#include <hs/hs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static unsigned long long matches;

static int on_match(unsigned int id, unsigned long long from, unsigned long long to,
                    unsigned int flags, void *ctx) {
    (void)id; (void)from; (void)to; (void)flags; (void)ctx;
    matches++;
    return 0;
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static double cpu_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static unsigned char *read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) { perror(path); exit(1); }
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *buf = malloc(n + 1);
    if (!buf || fread(buf, 1, n, f) != (size_t)n) { fprintf(stderr, "%s: read failed\n", path); exit(1); }
    buf[n] = 0;
    fclose(f);
    *len = n;
    return buf;
}

static int hexval(int c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

int main(int argc, char **argv) {
    if (argc != 5) {
        fprintf(stderr, "usage: hsbench PATTERNS CORPUS CHUNK RUNS\n");
        return 2;
    }
    size_t plen, clen;
    char *ptext = (char *)read_file(argv[1], &plen);
    unsigned char *corpus = read_file(argv[2], &clen);
    size_t chunk = strtoul(argv[3], NULL, 10);
    int runs = atoi(argv[4]);
    if (chunk == 0) chunk = clen;
    /* lp: the blocks are the corpus's length-prefixed records. */
    size_t nrec = 0, reccap = 1024, lpbytes = 0;
    size_t *recoff = NULL, *reclen = NULL;
    int lp = !strcmp(argv[3], "lp");
    if (lp) {
        recoff = malloc(reccap * sizeof *recoff);
        reclen = malloc(reccap * sizeof *reclen);
        for (size_t off = 0; off + 4 <= clen;) {
            size_t l = corpus[off] | corpus[off + 1] << 8 | corpus[off + 2] << 16 | (size_t)corpus[off + 3] << 24;
            if (off + 4 + l > clen) { fprintf(stderr, "%s: record at %zu overruns the file\n", argv[2], off); return 1; }
            if (nrec == reccap) {
                reccap *= 2;
                recoff = realloc(recoff, reccap * sizeof *recoff);
                reclen = realloc(reclen, reccap * sizeof *reclen);
            }
            recoff[nrec] = off + 4;
            reclen[nrec++] = l;
            lpbytes += l;
            off += 4 + l;
        }
        chunk = 0;
    }

    size_t cap = 1024, n = 0;
    char **exprs = malloc(cap * sizeof *exprs);
    unsigned *flags = malloc(cap * sizeof *flags), *ids = malloc(cap * sizeof *ids);
    for (char *line = strtok(ptext, "\n"); line; line = strtok(NULL, "\n")) {
        char *tab = strchr(line, '\t');
        if (!tab) { fprintf(stderr, "pattern %zu: no tab\n", n + 1); return 1; }
        *tab = 0;
        const char *hex = tab + 1;
        size_t hl = strlen(hex);
        if (n == cap) {
            cap *= 2;
            exprs = realloc(exprs, cap * sizeof *exprs);
            flags = realloc(flags, cap * sizeof *flags);
            ids = realloc(ids, cap * sizeof *ids);
        }
        char *e = malloc(hl * 2 + 2), *p = e;
        unsigned fl = 0;
        if (!strcmp(line, "bol")) { *p++ = '^'; fl |= HS_FLAG_MULTILINE; }
        else if (!strcmp(line, "nocase")) fl |= HS_FLAG_CASELESS;
        else if (strcmp(line, "lit") && strcmp(line, "hex")) { fprintf(stderr, "pattern %zu: kind %s\n", n + 1, line); return 1; }
        for (size_t i = 0; i + 1 < hl; i += 2) {
            if (hexval(hex[i]) < 0 || hexval(hex[i + 1]) < 0) { fprintf(stderr, "pattern %zu: bad hex\n", n + 1); return 1; }
            p += sprintf(p, "\\x%c%c", hex[i], hex[i + 1]);
        }
        *p = 0;
        exprs[n] = e;
        flags[n] = fl;
        ids[n] = n;
        n++;
    }

    hs_database_t *db;
    hs_compile_error_t *cerr;
    double t0 = now();
    if (hs_compile_multi((const char *const *)exprs, flags, ids, n, HS_MODE_BLOCK, NULL, &db, &cerr) != HS_SUCCESS) {
        fprintf(stderr, "hs_compile_multi: pattern %d: %s\n", cerr->expression, cerr->message);
        return 1;
    }
    double compile_ms = (now() - t0) * 1000;
    hs_scratch_t *scratch = NULL;
    if (hs_alloc_scratch(db, &scratch) != HS_SUCCESS) { fprintf(stderr, "hs_alloc_scratch failed\n"); return 1; }

    double *mbps = malloc(runs * sizeof *mbps), *cpu = malloc(runs * sizeof *cpu);
    unsigned long long count = 0;
    for (int r = 0; r < runs; r++) {
        matches = 0;
        double s = now(), cs = cpu_now();
        if (lp) {
            for (size_t i = 0; i < nrec; i++)
                hs_scan(db, (const char *)corpus + recoff[i], reclen[i], 0, scratch, on_match, NULL);
        } else {
            for (size_t off = 0; off + chunk <= clen; off += chunk)
                hs_scan(db, (const char *)corpus + off, chunk, 0, scratch, on_match, NULL);
        }
        double el = now() - s, cel = cpu_now() - cs;
        size_t scanned = lp ? lpbytes : clen / chunk * chunk;
        mbps[r] = scanned / el / 1e6;
        cpu[r] = scanned / cel / 1e6;
        count = matches;
        printf("run %d: %.1f MB/s wall, %.1f MB/s cpu, %llu matches\n", r + 1, mbps[r], cpu[r], matches);
    }
    qsort(mbps, runs, sizeof *mbps, cmp_double);
    qsort(cpu, runs, sizeof *cpu, cmp_double);
    if (lp)
        printf("blocks=%zu bytes=%zu cpu_s_median=%.3f\n", nrec, lpbytes, lpbytes / cpu[runs / 2] / 1e6);
    printf("hsbench patterns=%zu chunk=%zu compile_ms=%.1f matches=%llu mbps_median=%.1f mbps_cpu_median=%.1f\n",
           n, chunk, compile_ms, count, mbps[runs / 2], cpu[runs / 2]);
    hs_free_scratch(scratch);
    hs_free_database(db);
    return 0;
}
