/*
 * pattern-limit: the kernel's cost of a write pattern, for the benchmarks.
 *
 *   pattern-limit list STREAM          print the ranges of a PROTO[3] stream ("-": stdin),
 *                                      one "OFFSET LENGTH" line per data record and
 *                                      "OFFSET LENGTH discard" per discard record; data and
 *                                      control items (the end-of-stream mark) are skipped
 *   pattern-limit write RANGES DEST    write every range of RANGES onto DEST with pwrite(2),
 *                                      then fdatasync(2); prints "ranges writes bytes seconds"
 *   pattern-limit pipe-send BYTES      write BYTES bytes (from one 1 MiB buffer) to stdout
 *   pattern-limit pipe-recv BYTES      read stdin to its end into one 1 MiB buffer; fails
 *                                      unless exactly BYTES bytes arrived
 *
 * `pipe-send N | pipe-recv N` is the cost of moving N bytes through a pipe and nothing else
 * (a copy into the pipe, one out of it, the two ends taking turns), with the 1 MiB pipe
 * buffer lvmsync asks for: the floor under any sender → receiver pipeline of N bytes.
 *
 * RANGES holds "OFFSET LENGTH" lines (lines that do not start with a digit are skipped, so the
 * output of `vmdksync --dry-run` can be given as it is), with an optional third word
 * "discard": such a range is punched (fallocate PUNCH_HOLE), as the tools discard it.
 * The ranges are sorted and adjacent ones of the same kind merged, then written in ascending
 * order from one buffer, at most 8 MiB per pwrite: no reading, no checking, no copying of
 * data. No tool that writes the same bytes to the same file can take less time than this
 * (short of not flushing), which makes it the reference for scattered writes, where `dd` of
 * the same byte count (one sequential run) is not.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define STEP (8u << 20)

struct range {
	uint64_t off, len;
	int discard;
};

static void die(const char *what)
{
	fprintf(stderr, "pattern-limit: %s: %s\n", what, errno ? strerror(errno) : "bad input");
	exit(1);
}

static int by_offset(const void *a, const void *b)
{
	const struct range *x = a, *y = b;
	return x->off < y->off ? -1 : x->off > y->off;
}

static uint64_t be(const unsigned char *p, int n)
{
	uint64_t v = 0;
	for (int i = 0; i < n; i++)
		v = v << 8 | p[i];
	return v;
}

static int list(const char *path)
{
	FILE *f = strcmp(path, "-") ? fopen(path, "rb") : stdin;
	if (!f)
		die(path);
	static char line[64];
	if (!fgets(line, sizeof line, f))
		die("no handshake");
	int ext = !strcmp(line, "lvmsync PROTO[3] discards\n");
	if (!ext && strcmp(line, "lvmsync PROTO[3]\n"))
		die("not a PROTO[3] stream");
	static char skip[1 << 16];
	unsigned char h[12];
	while (fread(h, 1, 12, f) == 12) {
		uint64_t off = be(h, 8), len = be(h + 8, 4);
		/* An offset of 2^63 or more is a control item (BEGIN, END): its payload is skipped
		 * like data, and it writes nothing. */
		int control = off >> 63;
		int discard = !control && ext && (len & 0x80000000u);
		if (discard)
			len &= 0x7fffffffu;
		if (!control)
			printf("%llu %llu%s\n", (unsigned long long)off, (unsigned long long)len,
			       discard ? " discard" : "");
		for (uint64_t left = discard ? 0 : len; left > 0;) {
			size_t n = left < sizeof skip ? left : sizeof skip;
			if (fread(skip, 1, n, f) != n)
				die("stream ends inside a record");
			left -= n;
		}
	}
	return 0;
}

static int write_ranges(const char *rpath, const char *dpath)
{
	FILE *f = fopen(rpath, "r");
	if (!f)
		die(rpath);
	size_t n = 0, cap = 1024;
	struct range *r = malloc(cap * sizeof *r);
	char line[128], word[16];
	while (r && fgets(line, sizeof line, f)) {
		unsigned long long off, len;
		if (line[0] < '0' || line[0] > '9')
			continue;
		word[0] = 0;
		if (sscanf(line, "%llu %llu %15s", &off, &len, word) < 2 || len == 0)
			continue;
		if (n == cap)
			r = realloc(r, (cap *= 2) * sizeof *r);
		if (r)
			r[n++] = (struct range){ off, len, !strcmp(word, "discard") };
	}
	if (!r)
		die("out of memory");
	fclose(f);
	qsort(r, n, sizeof *r, by_offset);
	size_t m = 0;
	for (size_t i = 0; i < n; i++) {
		if (m && r[m - 1].off + r[m - 1].len == r[i].off && r[m - 1].discard == r[i].discard)
			r[m - 1].len += r[i].len;
		else
			r[m++] = r[i];
	}
	char *buf = malloc(STEP);
	if (!buf)
		die("out of memory");
	for (size_t i = 0; i < STEP; i++)
		buf[i] = (char)(i * 131 + 7);
	int fd = open(dpath, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		die(dpath);
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	uint64_t bytes = 0, writes = 0;
	for (size_t i = 0; i < m; i++) {
		if (r[i].discard) {
			if (fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)r[i].off,
				      (off_t)r[i].len))
				die("fallocate");
			writes++;
			continue;
		}
		for (uint64_t done = 0; done < r[i].len;) {
			size_t want = r[i].len - done < STEP ? r[i].len - done : STEP;
			ssize_t got = pwrite(fd, buf, want, (off_t)(r[i].off + done));
			if (got <= 0)
				die("pwrite");
			done += (uint64_t)got;
			bytes += (uint64_t)got;
			writes++;
		}
	}
	if (fdatasync(fd))
		die("fdatasync");
	clock_gettime(CLOCK_MONOTONIC, &t1);
	printf("%zu %llu %llu %.6f\n", m, (unsigned long long)writes, (unsigned long long)bytes,
	       (double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9);
	return close(fd) ? (die("close"), 1) : 0;
}

#define PIPE_STEP (1u << 20)

/* BYTES: decimal digits only. */
static unsigned long long byte_count(const char *count)
{
	char *end;
	errno = 0;
	if (*count < '0' || *count > '9')
		die("BYTES");
	unsigned long long n = strtoull(count, &end, 10);
	if (errno || *end)
		die("BYTES");
	return n;
}

/* The pipe on FD gets the 1 MiB buffer lvmsync asks for, or the measurement stops. */
static void pipe_size(int fd)
{
	if (fcntl(fd, F_SETPIPE_SZ, PIPE_STEP) < (int)PIPE_STEP)
		die("F_SETPIPE_SZ (a pipe of 1 MiB)");
}

static int pipe_send(const char *count)
{
	unsigned long long left = byte_count(count);
	char *buf = malloc(PIPE_STEP);
	if (!buf)
		die("malloc");
	memset(buf, 0x5a, PIPE_STEP);
	pipe_size(1);
	while (left > 0) {
		size_t n = left < PIPE_STEP ? (size_t)left : PIPE_STEP;
		ssize_t w = write(1, buf, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			die("write");
		if (w == 0) {
			errno = EIO;
			die("write");
		}
		left -= (unsigned long long)w;
	}
	return 0;
}

static int pipe_recv(const char *count)
{
	unsigned long long want = byte_count(count), got = 0;
	char *buf = malloc(PIPE_STEP);
	if (!buf)
		die("malloc");
	pipe_size(0);
	for (;;) {
		ssize_t r = read(0, buf, PIPE_STEP);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			die("read");
		if (r == 0)
			break;
		got += (unsigned long long)r;
	}
	if (got != want) {
		errno = 0;
		die("pipe-recv: not the number of bytes sent");
	}
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 3 && !strcmp(argv[1], "pipe-send"))
		return pipe_send(argv[2]);
	if (argc == 3 && !strcmp(argv[1], "pipe-recv"))
		return pipe_recv(argv[2]);
	if (argc == 3 && !strcmp(argv[1], "list"))
		return list(argv[2]);
	if (argc == 4 && !strcmp(argv[1], "write"))
		return write_ranges(argv[2], argv[3]);
	fprintf(stderr, "usage: pattern-limit list STREAM | pattern-limit write RANGES DEST | "
			"pattern-limit pipe-send BYTES | pattern-limit pipe-recv BYTES\n");
	return 2;
}
