/*
 * fuzz_config.c - libFuzzer target: the configuration parser
 * (include/m2worker/config.h, src/config.c).
 *
 * m2w_config_load reads a path, so each input is written to one scratch
 * file made once per process (LLVMFuzzerInitialize, in /dev/shm when it
 * is there, else TMPDIR) and loaded twice: over the defaults, then once
 * more over the result (layered files: every value the first load set is
 * replaced and must be freed, which LeakSanitizer checks). The mistake
 * report must stay a NUL-terminated string inside its buffer, and be
 * empty exactly when no mistake was counted. The loaded config is then
 * queried (type settings, carrier mapping, watches) and released. The
 * value parsers (durations, sizes, booleans) get the input's first line.
 *
 * Inputs that name a device or kernel file as a secret ("file:/dev/...",
 * "/proc/", "/sys/") are passed over: m2_secret_resolve reads the first
 * line of any file (bounded to 8 KiB since the fuzzing found it was not),
 * and /dev/stdin or a FIFO blocks. That is an admin's own config, not
 * input from the network.
 */
#include "config.h"

#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "m2worker/config.h"
#include "m2worker/error.h"

#define CHECK(c) \
	do { \
		if (!(c)) { \
			fprintf(stderr, "fuzz_config: %s:%d: %s\n", __FILE__, \
				__LINE__, #c); \
			abort(); \
		} \
	} while (0)

#define REPORT_LEN 4096

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char path[4096];

static void cleanup(void)
{
	if (path[0])
		unlink(path);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	const char *dir = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : NULL;
	int fd;

	(void)argc;
	(void)argv;
	if (!dir)
		dir = getenv("TMPDIR") && *getenv("TMPDIR") ? getenv("TMPDIR")
							   : "/tmp";
	snprintf(path, sizeof(path), "%s/fuzz_config.XXXXXX", dir);
	fd = mkstemp(path);
	if (fd < 0) {
		perror("fuzz_config: mkstemp");
		exit(1);
	}
	close(fd);
	atexit(cleanup);
	return 0;
}

static int names_device(const uint8_t *data, size_t size)
{
	static const char *const bad[] = { "/dev/", "/proc/", "/sys/" };
	size_t i, j;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		size_t n = strlen(bad[i]);

		for (j = 0; j + n <= size; j++)
			if (memcmp(data + j, bad[i], n) == 0)
				return 1;
	}
	return 0;
}

static void write_input(const uint8_t *data, size_t size)
{
	int fd = open(path, O_WRONLY | O_TRUNC);
	size_t off = 0;

	CHECK(fd >= 0);
	while (off < size) {
		ssize_t w = write(fd, data + off, size - off);

		CHECK(w > 0);
		off += (size_t)w;
	}
	close(fd);
}

static void check_report(int count, const char *report)
{
	size_t n = strnlen(report, REPORT_LEN);

	CHECK(count >= 0);
	CHECK(n < REPORT_LEN);
	CHECK((count == 0) == (n == 0));
}

static void query(const struct m2w_config *cfg)
{
	static const char *const types[] = { "tracking", "stock", "price",
					     "rest", "nope", "" };
	static const char *const carriers[] = { "DHL", "dhl express", "UPS",
						"custom", "Royal Mail", "" };
	const struct m2w_map *m;
	size_t i;

	for (i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
		const struct m2w_type_cfg *t = m2w_config_type(cfg, types[i]);

		if (t)
			CHECK(strcmp(t->name, types[i]) == 0);
	}
	m = m2w_config_map(cfg, "carriers");
	CHECK(m != NULL);
	for (i = 0; i < sizeof(carriers) / sizeof(carriers[0]); i++) {
		const char *c = m2w_map_get(m, carriers[i]);

		if (c)
			(void)strlen(c);
	}
	for (i = 0; i < m->n; i++)
		CHECK(m->v[i].name && m->v[i].value &&
		      m2w_map_get(m, m->v[i].name) != NULL);
	/* every setting of every type reads back */
	for (i = 0; i < cfg->ntypes; i++) {
		const struct m2w_setting *k;

		for (k = cfg->types[i].job->settings; k && k->name; k++)
			(void)m2w_config_setting(cfg, cfg->types[i].name,
						 k->name);
	}
	for (i = 0; i < cfg->nwatches; i++) {
		const struct m2w_watch_cfg *w = &cfg->watches[i];

		CHECK(w->name != NULL);
		if (w->path)
			(void)strlen(w->path);
		if (w->columns)
			(void)strlen(w->columns);
	}
}

static void value_parsers(const uint8_t *data, size_t size)
{
	char line[256];
	size_t n = 0;
	int b;

	while (n < size && n < sizeof(line) - 1 && data[n] != '\n')
		n++;
	memcpy(line, data, n);
	line[n] = '\0';
	(void)m2w_parse_duration_ms(line);
	(void)m2w_parse_size(line);
	b = m2w_parse_bool(line);
	CHECK(b >= -1 && b <= 1);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct m2w_config cfg;
	char report[REPORT_LEN];
	int count;

	value_parsers(data, size);
	if (names_device(data, size))
		return 0;
	write_input(data, size);

	m2w_config_defaults(&cfg);
	memset(report, 'x', sizeof(report));
	count = m2w_config_load(path, &cfg, report, sizeof(report));
	check_report(count, report);
	query(&cfg);

	/* layered: the same file over what it set */
	memset(report, 'x', sizeof(report));
	count = m2w_config_load(path, &cfg, report, sizeof(report));
	check_report(count, report);
	query(&cfg);
	m2w_config_release(&cfg);
	return 0;
}
