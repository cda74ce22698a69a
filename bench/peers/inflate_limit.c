/*
 * inflate-limit: a streamOptimized VMDK applied in a single pass, for the benchmarks.
 *
 *   inflate-limit STREAM_OPTIMIZED.vmdk DEST
 *
 * Walks the grain markers of the file once (from the header's overHead on, as written in
 * stream order), then inflates every grain exactly once with libdeflate on one thread per
 * CPU, each thread pwrite()ing its grains at their disk offset as soon as they are inflated,
 * and finally fdatasync()s DEST. It checks nothing before writing (a bad grain is found
 * only when it is reached): the fastest a tool can apply these grains on this machine, and
 * the reference for vmdksync, which inflates every grain once to validate the delta before
 * its first write and once more to apply it. Prints "grains bytes threads seconds".
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <libdeflate.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct grain {
	uint64_t lba, off;
	uint32_t size;
};

static struct grain *grains;
static size_t ngrains, next_grain;
static uint64_t grain_bytes;
static int in_fd, out_fd;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

static void die(const char *what)
{
	fprintf(stderr, "inflate-limit: %s: %s\n", what, errno ? strerror(errno) : "bad input");
	exit(1);
}

static void *worker(void *arg)
{
	(void)arg;
	struct libdeflate_decompressor *d = libdeflate_alloc_decompressor();
	unsigned char *in = malloc(2 * grain_bytes + 512), *out = malloc(grain_bytes);
	if (!d || !in || !out)
		die("out of memory");
	for (;;) {
		pthread_mutex_lock(&lock);
		size_t i = next_grain < ngrains ? next_grain++ : ngrains;
		pthread_mutex_unlock(&lock);
		if (i == ngrains)
			break;
		struct grain *g = &grains[i];
		if (pread(in_fd, in, g->size, (off_t)g->off) != (ssize_t)g->size)
			die("read grain");
		size_t n;
		if (libdeflate_zlib_decompress(d, in, g->size, out, grain_bytes, &n) != LIBDEFLATE_SUCCESS)
			die("inflate grain");
		if (pwrite(out_fd, out, n, (off_t)(g->lba * 512)) != (ssize_t)n)
			die("write grain");
	}
	libdeflate_free_decompressor(d);
	free(in);
	free(out);
	return NULL;
}

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: inflate-limit STREAM_OPTIMIZED.vmdk DEST\n");
		return 2;
	}
	in_fd = open(argv[1], O_RDONLY | O_CLOEXEC);
	out_fd = open(argv[2], O_WRONLY | O_CLOEXEC);
	if (in_fd < 0 || out_fd < 0)
		die("open");
	unsigned char h[512];
	if (pread(in_fd, h, 512, 0) != 512 || memcmp(h, "KDMV", 4))
		die("not a hosted sparse extent");
	uint64_t gsec, overhead;
	memcpy(&gsec, h + 20, 8);
	memcpy(&overhead, h + 64, 8);
	grain_bytes = gsec * 512;
	off_t end = lseek(in_fd, 0, SEEK_END);
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	size_t cap = 1024;
	grains = malloc(cap * sizeof *grains);
	for (uint64_t at = overhead * 512; at + 512 <= (uint64_t)end;) {
		unsigned char m[16];
		if (pread(in_fd, m, 16, (off_t)at) != 16)
			die("read marker");
		uint64_t val;
		uint32_t size, type;
		memcpy(&val, m, 8);
		memcpy(&size, m + 8, 4);
		memcpy(&type, m + 12, 4);
		if (size > 0) {
			if (ngrains == cap && !(grains = realloc(grains, (cap *= 2) * sizeof *grains)))
				die("out of memory");
			grains[ngrains++] = (struct grain){ val, at + 12, size };
			at += (12 + size + 511) / 512 * 512;
		} else if (type == 0) {
			break; /* end of stream */
		} else {
			at += (1 + val) * 512; /* grain table, directory or footer */
		}
	}
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	int threads = cpus < 1 ? 1 : cpus > 8 ? 8 : (int)cpus;
	pthread_t tid[8];
	for (int i = 0; i < threads; i++)
		pthread_create(&tid[i], NULL, worker, NULL);
	for (int i = 0; i < threads; i++)
		pthread_join(tid[i], NULL);
	if (fdatasync(out_fd))
		die("fdatasync");
	clock_gettime(CLOCK_MONOTONIC, &t1);
	printf("%zu %llu %d %.6f\n", ngrains, (unsigned long long)(ngrains * grain_bytes), threads,
	       (double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9);
	return 0;
}
