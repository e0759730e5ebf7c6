/*
 * replay.c - crashsim-replay: what a power cut could leave on disk, from a
 * snapshot of the traced directory and the traces of libcrashsim.so
 * (shim.c, trace.h). ALICE-style (OSDI 2014, "All File Systems Are Not
 * Created Equal"), with a simple, strict model of the file system:
 *
 *   crashsim-replay snap ROOT SNAP      copy ROOT to SNAP/tree, noting
 *                                       every entry's (dev, ino)
 *   crashsim-replay list SNAP TRACE N SEED
 *                                       N cut points, "K MODE SEED" a line
 *   crashsim-replay image SNAP TRACE K MODE SEED OUT
 *                                       the tree a cut after op K could
 *                                       leave, in OUT; prints the labels of
 *                                       the markers up to K
 *
 * The model, for a cut after the op of seq K (ops in seq order):
 *  - a file's data: every write and truncate before its last fsync or
 *    fdatasync (up to K) is there, and so is a write through an O_DSYNC fd
 *    that returned. Of the others, mode "dropped" keeps none, "subset" a
 *    random subset applied in order, "reorder" a random subset applied in
 *    random order after the durable ones.
 *  - a directory's entries (create, mkdir, link, unlink, rename): those
 *    before its last fsync are there; of the others a random prefix
 *    (journaled metadata is ordered), or in mode "subset" a random subset.
 *    A rename within one directory is one entry change; across directories
 *    it is two, one in each, that survive independently. A file fsync
 *    makes no name durable.
 *  - a file whose name survives has the data above (maybe none); a file or
 *    directory no surviving name reaches is gone.
 * Not modelled: torn writes inside a page or sector, file system bugs,
 * lock.mdb (not traced), the files' modes and times.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include "trace.h"

enum { M_DROPPED, M_SUBSET, M_REORDER };
static const char *const modes[] = { "dropped", "subset", "reorder" };
enum { D_ADD, D_DEL, D_REN };

struct op {
	struct cs_rec r;
	const char *n1, *n2;          /* NUL-terminated copies */
	const unsigned char *data;
	uint64_t done;                /* O_DSYNC write: seq of its return */
};

struct dop {                          /* a change of a directory */
	uint64_t seq;
	int kind, node;
	const char *name, *name2;
};

struct ent {
	char *name;
	int node;
};

struct node {
	int isdir;
	char *init;                   /* snapshot copy, NULL: starts empty */
	struct op **ops;              /* writes, truncates, syncs */
	size_t nops, capops;
	struct dop *dops;             /* a directory's changes */
	size_t ndops, capdops;
	struct ent *ents;             /* a directory's entries at start */
	size_t nents, capents;
	/* per image */
	unsigned char *buf;
	size_t len, cap;
	int built, visiting;
};

static struct node *nodes;
static size_t nnodes, capnodes;
static struct op *ops;
static size_t nops;
static int root = -1;

/* (dev, ino) -> current node */
struct idmap { uint64_t dev, ino; int node; };
static struct idmap *ids;
static size_t nids, capids;

static void *xrealloc(void *p, size_t n)
{
	if (!(p = realloc(p, n ? n : 1))) {
		perror("crashsim-replay");
		exit(99);
	}
	return p;
}

#define PUSH(arr, n, cap) do { \
	if ((n) == (cap)) { \
		(cap) = (cap) ? 2 * (cap) : 8; \
		(arr) = xrealloc((arr), (cap) * sizeof(*(arr))); \
	} \
} while (0)

static uint64_t rng;
static uint64_t rnd(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

static int new_node(int isdir)
{
	PUSH(nodes, nnodes, capnodes);
	memset(&nodes[nnodes], 0, sizeof(nodes[0]));
	nodes[nnodes].isdir = isdir;
	return (int)nnodes++;
}

static int id_get(uint64_t dev, uint64_t ino)
{
	size_t i;

	for (i = nids; i-- > 0;)
		if (ids[i].dev == dev && ids[i].ino == ino)
			return ids[i].node;
	return -1;
}

static void id_set(uint64_t dev, uint64_t ino, int node)
{
	size_t i;

	for (i = 0; i < nids; i++)
		if (ids[i].dev == dev && ids[i].ino == ino) {
			ids[i].node = node;
			return;
		}
	PUSH(ids, nids, capids);
	ids[nids].dev = dev;
	ids[nids].ino = ino;
	ids[nids++].node = node;
}

/* the node of (dev, ino); an inode never seen starts empty */
static int id_node(uint64_t dev, uint64_t ino, int isdir)
{
	int n = id_get(dev, ino);

	if (n < 0) {
		n = new_node(isdir);
		id_set(dev, ino, n);
	}
	return n;
}

static void ent_add(struct node *d, const char *name, int node)
{
	PUSH(d->ents, d->nents, d->capents);
	d->ents[d->nents].name = strdup(name);
	d->ents[d->nents++].node = node;
}

static void dop_add(int dir, uint64_t seq, int kind, const char *name,
		    const char *name2, int node)
{
	struct node *d;

	if (dir < 0)
		return;
	d = &nodes[dir];
	PUSH(d->dops, d->ndops, d->capdops);
	d->dops[d->ndops++] = (struct dop){ seq, kind, node, name, name2 };
}

/* ------------------------------------------------------------- snap */

static int copy_file(const char *from, const char *to)
{
	char buf[65536];
	int in = open(from, O_RDONLY), out;
	ssize_t n;

	if (in < 0)
		return -1;
	out = open(to, O_WRONLY | O_CREAT | O_EXCL, 0644);
	if (out < 0) {
		close(in);
		return -1;
	}
	while ((n = read(in, buf, sizeof(buf))) > 0)
		if (write(out, buf, (size_t)n) != n) {
			n = -1;
			break;
		}
	close(in);
	return close(out) || n < 0 ? -1 : 0;
}

static int snap_walk(const char *src, const char *dst, const char *rel,
		     FILE *idx)
{
	struct stat st;
	DIR *d;
	struct dirent *de;

	if (lstat(src, &st) != 0)
		return -1;
	if (S_ISDIR(st.st_mode)) {
		fprintf(idx, "D %" PRIu64 " %" PRIu64 " %s\n",
			(uint64_t)st.st_dev, (uint64_t)st.st_ino, rel);
		if (mkdir(dst, 0755) != 0 || !(d = opendir(src)))
			return -1;
		while ((de = readdir(d))) {
			char s[8192], t[8192], r[8192];

			if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..") ||
			    !strcmp(de->d_name, "lock.mdb"))
				continue;
			snprintf(s, sizeof(s), "%s/%s", src, de->d_name);
			snprintf(t, sizeof(t), "%s/%s", dst, de->d_name);
			snprintf(r, sizeof(r), "%s/%s", rel, de->d_name);
			if (snap_walk(s, t, r, idx) != 0) {
				closedir(d);
				return -1;
			}
		}
		return closedir(d);
	}
	if (!S_ISREG(st.st_mode))
		return 0;
	fprintf(idx, "F %" PRIu64 " %" PRIu64 " %s\n", (uint64_t)st.st_dev,
		(uint64_t)st.st_ino, rel);
	return copy_file(src, dst);
}

static int cmd_snap(const char *rootp, const char *snap)
{
	char tree[4096], idx[4096];
	FILE *f;

	snprintf(tree, sizeof(tree), "%s/tree", snap);
	snprintf(idx, sizeof(idx), "%s/index", snap);
	if (mkdir(snap, 0755) != 0 || !(f = fopen(idx, "w"))) {
		perror(snap);
		return 1;
	}
	if (snap_walk(rootp, tree, ".", f) != 0 || fclose(f) != 0) {
		perror(rootp);
		return 1;
	}
	return 0;
}

/* ------------------------------------------------------------- load */

static void load_snap(const char *snap)
{
	char idx[4096], line[8192], rel[8192], kind;
	uint64_t dev, ino;
	FILE *f;

	snprintf(idx, sizeof(idx), "%s/index", snap);
	if (!(f = fopen(idx, "r"))) {
		perror(idx);
		exit(99);
	}
	while (fgets(line, sizeof(line), f)) {
		int n;
		char *slash, parent[8192];

		if (sscanf(line, "%c %" SCNu64 " %" SCNu64 " %8191[^\n]", &kind,
			   &dev, &ino, rel) != 4)
			continue;
		n = new_node(kind == 'D');
		id_set(dev, ino, n);
		if (kind == 'F') {
			nodes[n].init = xrealloc(NULL, strlen(snap) +
						 strlen(rel) + 8);
			sprintf(nodes[n].init, "%s/tree/%s", snap, rel);
		}
		if (!strcmp(rel, ".")) {
			root = n;
			continue;
		}
		snprintf(parent, sizeof(parent), "%s", rel);
		slash = strrchr(parent, '/');
		*slash = '\0';
		{
			/* the parent, listed before it: walk from the root */
			int p = root;
			char *s = parent + 2, *tok, *save = NULL;

			if (!strcmp(parent, "."))
				s = NULL;
			for (tok = s ? strtok_r(s, "/", &save) : NULL; tok && p >= 0;
			     tok = strtok_r(NULL, "/", &save)) {
				int q = -1;

				for (size_t e = 0; e < nodes[p].nents; e++)
					if (!strcmp(nodes[p].ents[e].name, tok))
						q = nodes[p].ents[e].node;
				p = q;
			}
			if (p >= 0)
				ent_add(&nodes[p], slash + 1, n);
		}
	}
	fclose(f);
	if (root < 0) {
		fprintf(stderr, "crashsim-replay: %s has no root\n", idx);
		exit(99);
	}
}

static int by_seq(const void *a, const void *b)
{
	const struct op *x = a, *y = b;

	return x->r.seq < y->r.seq ? -1 : x->r.seq > y->r.seq;
}

static void load_traces(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	size_t cap = 0;

	if (!d) {
		perror(dir);
		exit(99);
	}
	while ((de = readdir(d))) {
		char p[8192];
		unsigned char *buf;
		struct stat st;
		size_t off = 0;
		int fd;

		if (strncmp(de->d_name, "t.", 2))
			continue;
		snprintf(p, sizeof(p), "%s/%s", dir, de->d_name);
		if ((fd = open(p, O_RDONLY)) < 0 || fstat(fd, &st) != 0) {
			perror(p);
			exit(99);
		}
		buf = xrealloc(NULL, (size_t)st.st_size + 1);
		if (read(fd, buf, (size_t)st.st_size) != st.st_size) {
			perror(p);
			exit(99);
		}
		close(fd);
		while (off + sizeof(struct cs_rec) <= (size_t)st.st_size) {
			struct op *o;
			char *n;

			PUSH(ops, nops, cap);
			o = &ops[nops++];
			memset(o, 0, sizeof(*o));
			memcpy(&o->r, buf + off, sizeof(o->r));
			off += sizeof(o->r);
			if (off + o->r.n1 + o->r.n2 + o->r.len > (size_t)st.st_size) {
				fprintf(stderr, "crashsim-replay: %s: cut "
					"record\n", p);
				exit(99);
			}
			n = xrealloc(NULL, o->r.n1 + o->r.n2 + 2);
			memcpy(n, buf + off, o->r.n1);
			n[o->r.n1] = '\0';
			memcpy(n + o->r.n1 + 1, buf + off + o->r.n1, o->r.n2);
			n[o->r.n1 + 1 + o->r.n2] = '\0';
			o->n1 = n;
			o->n2 = n + o->r.n1 + 1;
			off += o->r.n1 + o->r.n2;
			o->data = buf + off;
			off += o->r.len;
		}
	}
	closedir(d);
	qsort(ops, nops, sizeof(*ops), by_seq);
}

/* One pass in seq order: which node each op is about, and each
 * directory's changes. */
static void assign(void)
{
	size_t i, j;

	for (i = 0; i < nops; i++) {
		struct op *o = &ops[i];
		struct cs_rec *r = &o->r;
		int n, d1 = r->dino ? id_get(r->ddev, r->dino) : -1;
		int d2 = r->dino2 ? id_get(r->ddev2, r->dino2) : -1;
		struct node *nd;

		switch (r->type) {
		case CS_CREATE:
			n = new_node((r->flags & CS_DIR) != 0);
			id_set(r->dev, r->ino, n);
			dop_add(d1, r->seq, D_ADD, o->n1, NULL, n);
			break;
		case CS_WRITE:
		case CS_TRUNC:
		case CS_SYNC:
			n = id_node(r->dev, r->ino, 0);
			nd = &nodes[n];
			PUSH(nd->ops, nd->nops, nd->capops);
			nd->ops[nd->nops++] = o;
			break;
		case CS_DSYNC_DONE:
			for (j = i; j-- > 0;)
				if (ops[j].r.seq == (uint64_t)r->off) {
					ops[j].done = r->seq;
					break;
				}
			break;
		case CS_LINK:
			n = id_node(r->dev, r->ino, 0);
			dop_add(d2, r->seq, D_ADD, o->n2, NULL, n);
			break;
		case CS_UNLINK:
			dop_add(d1, r->seq, D_DEL, o->n1, NULL, -1);
			break;
		case CS_RENAME:
			n = id_node(r->dev, r->ino, 0);
			if (d1 >= 0 && d1 == d2) {
				dop_add(d1, r->seq, D_REN, o->n1, o->n2, n);
			} else {
				dop_add(d1, r->seq, D_DEL, o->n1, NULL, -1);
				dop_add(d2, r->seq, D_ADD, o->n2, NULL, n);
			}
			break;
		}
	}
}

/* ------------------------------------------------------------ image */

static uint64_t last_sync(const struct node *nd, uint64_t k)
{
	uint64_t s = 0;
	size_t i;

	for (i = 0; i < nd->nops; i++)
		if (nd->ops[i]->r.type == CS_SYNC && nd->ops[i]->r.seq <= k)
			s = nd->ops[i]->r.seq;
	return s;
}

static void apply(struct node *nd, const struct op *o)
{
	size_t end;

	if (o->r.type == CS_TRUNC) {
		end = (size_t)o->r.off;
		if (end > nd->cap) {
			nd->buf = xrealloc(nd->buf, end);
			nd->cap = end;
		}
		if (end > nd->len)
			memset(nd->buf + nd->len, 0, end - nd->len);
		nd->len = end;
		return;
	}
	end = (size_t)o->r.off + o->r.len;
	if (end > nd->cap) {
		nd->cap = end + end / 4;
		nd->buf = xrealloc(nd->buf, nd->cap);
	}
	if ((size_t)o->r.off > nd->len)
		memset(nd->buf + nd->len, 0, (size_t)o->r.off - nd->len);
	memcpy(nd->buf + o->r.off, o->data, o->r.len);
	if (end > nd->len)
		nd->len = end;
}

/* before the file's last sync s, or an O_DSYNC write that returned */
static int durable(const struct op *o, uint64_t s, uint64_t k)
{
	return o->r.seq < s || (o->done && o->done <= k);
}

static void build_file(struct node *nd, uint64_t k, int mode)
{
	struct op **vol = NULL;
	size_t i, nv = 0, capv = 0;
	uint64_t s = last_sync(nd, k);

	nd->built = 1;
	nd->len = 0;
	if (nd->init) {
		int fd = open(nd->init, O_RDONLY);
		struct stat st;

		if (fd < 0 || fstat(fd, &st) != 0) {
			perror(nd->init);
			exit(99);
		}
		nd->cap = nd->len = (size_t)st.st_size;
		nd->buf = xrealloc(nd->buf, nd->cap);
		if (read(fd, nd->buf, nd->len) != (ssize_t)nd->len) {
			perror(nd->init);
			exit(99);
		}
		close(fd);
	}
	for (i = 0; i < nd->nops; i++) {
		struct op *o = nd->ops[i];

		if (o->r.seq > k || o->r.type == CS_SYNC)
			continue;
		if (durable(o, s, k)) {
			/* in order with the volatile ones kept before it */
			if (!nv)
				apply(nd, o);
			else {
				PUSH(vol, nv, capv);
				vol[nv++] = o;
			}
		} else if (mode != M_DROPPED && (rnd() & 1)) {
			PUSH(vol, nv, capv);
			vol[nv++] = o;
		}
	}
	/* reorder: the volatile ones swap places; durable ones keep theirs */
	for (i = nv; mode == M_REORDER && i > 1; i--) {
		size_t j = rnd() % i;
		struct op *t = vol[i - 1];

		if (durable(t, s, k) || durable(vol[j], s, k))
			continue;
		vol[i - 1] = vol[j];
		vol[j] = t;
	}
	for (i = 0; i < nv; i++)
		apply(nd, vol[i]);
	free(vol);
}

/* a directory's entries at the cut, into ents (replacing the start) */
static struct ent *build_dir(struct node *nd, uint64_t k, int mode,
			     size_t *count)
{
	struct ent *e = NULL;
	size_t n = 0, cap = 0, i, j, nvol = 0, keep;
	uint64_t s = last_sync(nd, k);

	for (i = 0; i < nd->nents; i++) {
		PUSH(e, n, cap);
		e[n++] = nd->ents[i];
	}
	for (i = 0; i < nd->ndops; i++)
		if (nd->dops[i].seq <= k && nd->dops[i].seq >= s)
			nvol++;
	keep = mode == M_SUBSET ? nvol : (size_t)(rnd() % (nvol + 1));
	for (i = 0; i < nd->ndops; i++) {
		const struct dop *d = &nd->dops[i];

		if (d->seq > k)
			break;
		if (d->seq >= s) {
			if (mode == M_SUBSET ? (rnd() & 1) == 0 : keep == 0)
				continue;
			if (mode != M_SUBSET)
				keep--;
		}
		for (j = 0; j < n; j++)
			if (!strcmp(e[j].name, d->name))
				break;
		if (d->kind == D_DEL || d->kind == D_REN) {
			if (j < n)
				e[j] = e[--n];
			if (d->kind == D_DEL)
				continue;
		}
		const char *nm = d->kind == D_REN ? d->name2 : d->name;

		for (j = 0; j < n; j++)
			if (!strcmp(e[j].name, nm))
				break;
		if (j == n) {
			PUSH(e, n, cap);
			n++;
		}
		e[j].name = (char *)nm;
		e[j].node = d->node;
	}
	*count = n;
	return e;
}

static int materialize(int node, const char *path, uint64_t k, int mode)
{
	struct node *nd = &nodes[node];

	if (nd->isdir) {
		struct ent *e;
		size_t n, i;
		int rc = 0;

		if (nd->visiting)
			return 0;
		if (mkdir(path, 0755) != 0 && errno != EEXIST) {
			perror(path);
			return -1;
		}
		nd->visiting = 1;
		e = build_dir(nd, k, mode, &n);
		for (i = 0; i < n && rc == 0; i++) {
			char p[8192];

			snprintf(p, sizeof(p), "%s/%s", path, e[i].name);
			rc = materialize(e[i].node, p, k, mode);
		}
		free(e);
		nd->visiting = 0;
		return rc;
	}
	if (!nd->built)
		build_file(nd, k, mode);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);

	if (fd < 0 || (nd->len && write(fd, nd->buf, nd->len) !=
				  (ssize_t)nd->len) || close(fd) != 0) {
		perror(path);
		return -1;
	}
	return 0;
}

static int parse_mode(const char *s)
{
	int i;

	for (i = 0; i < 3; i++)
		if (!strcmp(s, modes[i]))
			return i;
	fprintf(stderr, "crashsim-replay: no mode %s\n", s);
	exit(2);
}

static int cmd_image(uint64_t k, int mode, uint64_t seed, const char *out)
{
	size_t i;

	rng = seed * 0x9E3779B97F4A7C15ULL + 1;
	if (materialize(root, out, k, mode) != 0)
		return 1;
	for (i = 0; i < nops && ops[i].r.seq <= k; i++)
		if (ops[i].r.type == CS_MARK)
			printf("%s\n", ops[i].n1);
	return 0;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* N cut points: every sync and marker neighbourhood and the end first
 * (shuffled, when there are more than N), the rest drawn at random. */
static int cmd_list(size_t want, uint64_t seed)
{
	uint64_t *c = NULL, maxseq = nops ? ops[nops - 1].r.seq : 0;
	size_t n = 0, cap = 0, i, nsync = 0, nmark = 0, m;

	rng = seed * 0x9E3779B97F4A7C15ULL + 1;
	for (i = 0; i < nops; i++) {
		uint64_t s = ops[i].r.seq;
		int t = ops[i].r.type;

		nsync += t == CS_SYNC || t == CS_DSYNC_DONE;
		nmark += t == CS_MARK;
		if (t != CS_SYNC && t != CS_DSYNC_DONE && t != CS_MARK)
			continue;
		for (int d = -1; d <= 1; d++) {
			PUSH(c, n, cap);
			c[n++] = s + (uint64_t)d;
		}
	}
	PUSH(c, n, cap);
	c[n++] = maxseq;
	qsort(c, n, sizeof(*c), cmp_u64);
	for (i = m = 0; i < n; i++)  /* unique, within [1, maxseq] */
		if (c[i] >= 1 && c[i] <= maxseq && (!m || c[m - 1] != c[i]))
			c[m++] = c[i];
	n = m;
	for (i = n; i > 1; i--) {
		size_t j = rnd() % i;
		uint64_t t = c[i - 1];

		c[i - 1] = c[j];
		c[j] = t;
	}
	/* three quarters from the sync and marker points, the rest random
	 * (repeats are fine: each gets its own mode and seed) */
	m = n < want - want / 4 ? n : want - want / 4;
	if (n > m)
		n = m;
	while (n < want && maxseq) {
		PUSH(c, n, cap);
		c[n++] = 1 + rnd() % maxseq;
	}
	qsort(c, n, sizeof(*c), cmp_u64);
	fprintf(stderr, "crashsim-replay: %zu ops (seq 1..%" PRIu64 "), %zu "
		"syncs, %zu markers; %zu cuts\n", nops, maxseq, nsync, nmark, n);
	for (i = 0; i < n; i++)
		printf("%" PRIu64 " %s %" PRIu64 "\n", c[i], modes[i % 3],
		       seed * 1000003 + i);
	free(c);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 4 && !strcmp(argv[1], "snap"))
		return cmd_snap(argv[2], argv[3]);
	if ((argc == 6 && !strcmp(argv[1], "list")) ||
	    (argc == 8 && !strcmp(argv[1], "image"))) {
		load_snap(argv[2]);
		load_traces(argv[3]);
		assign();
		if (argc == 6)
			return cmd_list(strtoull(argv[4], NULL, 10),
					strtoull(argv[5], NULL, 10));
		return cmd_image(strtoull(argv[4], NULL, 10),
				 parse_mode(argv[5]),
				 strtoull(argv[6], NULL, 10), argv[7]);
	}
	fprintf(stderr,
		"usage: crashsim-replay snap ROOT SNAP\n"
		"       crashsim-replay list SNAP TRACE N SEED\n"
		"       crashsim-replay image SNAP TRACE K MODE SEED OUT\n");
	return 2;
}
