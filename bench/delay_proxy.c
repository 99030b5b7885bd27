/*
 * bench/delay_proxy.c - a TCP proxy that adds a fixed one-way delay
 * (pg_dtx benchmark).
 *
 *   cc -O2 -Wall -Wextra -Werror -o delay_proxy bench/delay_proxy.c
 *   ./delay_proxy --listen 127.0.0.1:PORT --target 127.0.0.1:PORT \
 *                 --delay-ms 2.5 [--pidfile FILE]
 *
 * Every connection accepted on --listen is forwarded to --target (connected
 * at once, not delayed).  Every chunk of bytes read in either direction is
 * written on --delay-ms after it was read, in the order it was read: a round
 * trip through the proxy costs 2 x delay more than a direct one, plus the
 * proxy's own few microseconds.  An end of stream (FIN) is passed on the
 * same way, after the bytes before it (half-close is kept: the other
 * direction goes on); an error on either socket closes both at once.
 *
 * One thread: epoll for the sockets, one timerfd (CLOCK_MONOTONIC, absolute
 * nanosecond deadlines, timer slack 1 ns) for the due chunks.  The delay is
 * the same for every chunk, so the chunks are due in the order they were
 * read: one global FIFO of all queued chunks, across connections, is the
 * timer queue, and its head is the only deadline ever armed.  Each direction
 * of a connection has its own FIFO of the same chunks; a chunk that is due
 * is written when all before it in its direction are; a write that does not
 * go through whole waits for EPOLLOUT.  A direction with more than
 * QUEUE_LIMIT bytes queued stops reading until it drains (back-pressure).
 *
 * SIGTERM or SIGINT: removes the pidfile and exits 0 (the kernel closes the
 * sockets, so both ends of every connection see it end).  At exit it prints to stderr the connections, chunks and bytes it forwarded.
 * Listens on and connects to the given IPv4 addresses only.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#define READ_SIZE	65536		/* bytes read at most per read() */
#define QUEUE_LIMIT	(4 << 20)	/* queued bytes per direction before it stops reading */
#define MAX_EVENTS	64

enum kind { K_LISTEN, K_TIMER, K_SIGNAL, K_SOCKET };

/* what an epoll event's data.ptr points to */
struct endpoint {
	enum kind	kind;
	struct conn *conn;			/* K_SOCKET: its connection */
	int			side;			/* K_SOCKET: 0 client, 1 upstream */
};

struct direction;

/* a chunk of bytes (or, eof set, an end of stream) waiting to be written */
struct chunk {
	struct chunk *next;			/* in its direction's FIFO */
	struct chunk *tprev, *tnext;	/* in the global timer FIFO, while not due */
	struct direction *dir;
	int64_t		due;			/* CLOCK_MONOTONIC, ns */
	bool		ready;			/* due: may be written */
	bool		eof;			/* an end of stream: shutdown(SHUT_WR) */
	size_t		len, off;		/* bytes, bytes already written */
	char		data[];
};

/* one direction of a connection: read from side src, written to side 1 - src */
struct direction {
	struct conn *conn;
	int			src;			/* the side it reads */
	struct chunk *head, *tail;
	size_t		queued;			/* bytes in the FIFO */
	bool		reading;		/* no EOF or error read yet */
	bool		blocked;		/* the head's write waits for EPOLLOUT */
	bool		done;			/* EOF read and passed on */
};

struct conn {
	int			fd[2];			/* 0 client, 1 upstream */
	uint32_t	events[2];		/* epoll interest registered per fd (0: none) */
	struct endpoint ep[2];
	struct direction dir[2];	/* dir[s] reads side s, writes side 1 - s */
	bool		dead;			/* closed; freed after the current batch */
	struct conn *next_dead;
};

static int	epfd = -1, listen_fd = -1, timer_fd = -1, signal_fd = -1;
static int64_t delay_ns;
static struct sockaddr_in target;
static const char *pidfile;
static struct chunk *thead, *ttail;	/* global timer FIFO, by due time */
static int64_t armed = -1;		/* deadline the timerfd holds (-1: none) */
static struct conn *dead_list;
static unsigned long n_conns, n_chunks, n_bytes, n_open;
static char readbuf[READ_SIZE];

static void
logmsg(const char *fmt, ...)
{
	va_list		ap;

	fprintf(stderr, "delay_proxy[%d]: ", (int) getpid());
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static void
fatal(const char *what)
{
	logmsg("%s: %s", what, strerror(errno));
	if (pidfile)
		unlink(pidfile);
	exit(1);
}

/* now_ns: CLOCK_MONOTONIC in nanoseconds */
static int64_t
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t) ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* parse_addr TEXT OUT: "a.b.c.d:port" into OUT; false when malformed */
static bool
parse_addr(const char *text, struct sockaddr_in *out)
{
	char		host[64];
	const char *colon = strrchr(text, ':');
	char	   *end;
	long		port;

	if (!colon || colon == text || (size_t) (colon - text) >= sizeof(host))
		return false;
	memcpy(host, text, colon - text);
	host[colon - text] = '\0';
	port = strtol(colon + 1, &end, 10);
	if (*end != '\0' || port < 1 || port > 65535)
		return false;
	memset(out, 0, sizeof(*out));
	out->sin_family = AF_INET;
	out->sin_port = htons((uint16_t) port);
	return inet_pton(AF_INET, host, &out->sin_addr) == 1;
}

/* timer_unlink C: removes C from the global timer FIFO (it must be in it) */
static void
timer_unlink(struct chunk *c)
{
	if (c->tprev)
		c->tprev->tnext = c->tnext;
	else
		thead = c->tnext;
	if (c->tnext)
		c->tnext->tprev = c->tprev;
	else
		ttail = c->tprev;
	c->tprev = c->tnext = NULL;
}

/*
 * set_interest CONN SIDE: registers with epoll what side SIDE's socket must
 * wait for: EPOLLIN while its direction reads and is not over QUEUE_LIMIT,
 * EPOLLOUT while a write to it is blocked.  A socket with nothing to wait for
 * is taken out of epoll (so that a hang-up on it cannot spin the loop).
 */
static void
set_interest(struct conn *c, int side)
{
	struct direction *in = &c->dir[side], *out = &c->dir[1 - side];
	uint32_t	want = 0;
	struct epoll_event ev;
	int			op;

	if (in->reading && in->queued < QUEUE_LIMIT)
		want |= EPOLLIN;
	if (out->blocked)
		want |= EPOLLOUT;
	if (want == c->events[side])
		return;
	op = want == 0 ? EPOLL_CTL_DEL : c->events[side] == 0 ? EPOLL_CTL_ADD : EPOLL_CTL_MOD;
	ev.events = want;
	ev.data.ptr = &c->ep[side];
	if (epoll_ctl(epfd, op, c->fd[side], &ev) < 0)
		fatal("epoll_ctl");
	c->events[side] = want;
}

/*
 * conn_close CONN: closes both sockets at once, drops every queued chunk
 * (out of the timer FIFO too) and puts CONN on the list freed after the
 * current batch of events (which may still name it).
 */
static void
conn_close(struct conn *c)
{
	int			s;

	if (c->dead)
		return;
	for (s = 0; s < 2; s++)
	{
		struct chunk *ch = c->dir[s].head, *next;

		for (; ch; ch = next)
		{
			next = ch->next;
			if (!ch->ready)
				timer_unlink(ch);
			free(ch);
		}
		c->dir[s].head = c->dir[s].tail = NULL;
		if (c->fd[s] >= 0)
			close(c->fd[s]);	/* also leaves epoll */
		c->fd[s] = -1;
	}
	c->dead = true;
	c->next_dead = dead_list;
	dead_list = c;
	n_open--;
}

/*
 * flush CONN S: writes direction S's due chunks, in order, to side 1 - S,
 * until one is not due or the socket takes no more (then waits for
 * EPOLLOUT).  An end of stream shuts the socket's sending side down; when
 * both directions have ended, or on an error, the connection is closed.
 * Returns false when it closed the connection.
 */
static bool
flush(struct conn *c, int s)
{
	struct direction *d = &c->dir[s];
	int			fd = c->fd[1 - s];
	struct chunk *ch;

	while ((ch = d->head) != NULL && ch->ready)
	{
		if (ch->eof)
		{
			shutdown(fd, SHUT_WR);
			d->done = true;
		}
		else
		{
			ssize_t		n = send(fd, ch->data + ch->off, ch->len - ch->off, MSG_NOSIGNAL);

			if (n < 0)
			{
				if (errno == EINTR)
					continue;
				if (errno == EAGAIN || errno == EWOULDBLOCK)
					break;
				conn_close(c);
				return false;
			}
			ch->off += n;
			n_bytes += n;
			if (ch->off < ch->len)
				break;			/* partial: the rest when EPOLLOUT says so */
			n_chunks++;
		}
		d->head = ch->next;
		if (!d->head)
			d->tail = NULL;
		d->queued -= ch->len;
		free(ch);
	}
	d->blocked = d->head != NULL && d->head->ready;
	if (c->dir[0].done && c->dir[1].done)
	{
		conn_close(c);
		return false;
	}
	set_interest(c, 1 - s);
	set_interest(c, s);
	return true;
}

/*
 * enqueue CONN S LEN EOF: appends to direction S a chunk of LEN bytes from
 * readbuf (or an end of stream), due delay_ns from now, to both FIFOs.
 */
static void
enqueue(struct conn *c, int s, size_t len, bool eof)
{
	struct direction *d = &c->dir[s];
	struct chunk *ch = malloc(sizeof(struct chunk) + len);

	if (!ch)
		fatal("malloc");
	memset(ch, 0, sizeof(*ch));
	ch->dir = d;
	ch->due = now_ns() + delay_ns;
	ch->eof = eof;
	ch->len = len;
	memcpy(ch->data, readbuf, len);
	if (d->tail)
		d->tail->next = ch;
	else
		d->head = ch;
	d->tail = ch;
	d->queued += len;
	ch->tprev = ttail;
	if (ttail)
		ttail->tnext = ch;
	else
		thead = ch;
	ttail = ch;
}

/*
 * on_readable CONN S: one read() from side S; queues what it read, or the
 * end of stream (no more reading on that side).  A read error closes the
 * connection.
 */
static void
on_readable(struct conn *c, int s)
{
	ssize_t		n = read(c->fd[s], readbuf, sizeof(readbuf));

	if (n < 0)
	{
		if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)
			return;
		conn_close(c);
		return;
	}
	enqueue(c, s, (size_t) n, n == 0);
	if (n == 0)
		c->dir[s].reading = false;
	set_interest(c, s);
}

/*
 * run_due NOW: marks every chunk due by NOW ready (out of the timer FIFO)
 * and writes what its direction can.
 */
static void
run_due(int64_t now)
{
	struct chunk *ch;

	while ((ch = thead) != NULL && ch->due <= now)
	{
		timer_unlink(ch);
		ch->ready = true;
		if (!ch->dir->blocked)
			flush(ch->dir->conn, ch->dir->src);
	}
}

/* arm_timer: the timerfd holds the head's due time (or nothing) */
static void
arm_timer(void)
{
	int64_t		want = thead ? thead->due : -1;
	struct itimerspec its;

	if (want == armed)
		return;
	memset(&its, 0, sizeof(its));
	if (want >= 0)
	{
		its.it_value.tv_sec = want / 1000000000;
		its.it_value.tv_nsec = want % 1000000000;
		if (its.it_value.tv_sec == 0 && its.it_value.tv_nsec == 0)
			its.it_value.tv_nsec = 1;	/* zero would disarm */
	}
	if (timerfd_settime(timer_fd, TFD_TIMER_ABSTIME, &its, NULL) < 0)
		fatal("timerfd_settime");
	armed = want;
}

/*
 * on_accept: accepts one connection, connects to the target (blocking: a
 * loopback connect takes microseconds) and registers both sockets.  A
 * refused connect closes the client's socket.
 */
static void
on_accept(void)
{
	int			cfd, ufd, one = 1, s;
	struct conn *c;

	cfd = accept4(listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (cfd < 0)
		return;					/* EAGAIN, or the client gave up already */
	ufd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (ufd < 0 || connect(ufd, (struct sockaddr *) &target, sizeof(target)) < 0)
	{
		logmsg("cannot connect to the target: %s", strerror(errno));
		if (ufd >= 0)
			close(ufd);
		close(cfd);
		return;
	}
	if (fcntl(ufd, F_SETFL, fcntl(ufd, F_GETFL) | O_NONBLOCK) < 0)
		fatal("fcntl");
	setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	setsockopt(ufd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	c = calloc(1, sizeof(*c));
	if (!c)
		fatal("calloc");
	c->fd[0] = cfd;
	c->fd[1] = ufd;
	for (s = 0; s < 2; s++)
	{
		c->ep[s].kind = K_SOCKET;
		c->ep[s].conn = c;
		c->ep[s].side = s;
		c->dir[s].conn = c;
		c->dir[s].src = s;
		c->dir[s].reading = true;
		set_interest(c, s);
	}
	n_conns++;
	n_open++;
}

static void
usage(FILE *f)
{
	fprintf(f, "usage: delay_proxy --listen ADDR:PORT --target ADDR:PORT --delay-ms MS [--pidfile FILE]\n");
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"listen", required_argument, NULL, 'l'},
		{"target", required_argument, NULL, 't'},
		{"delay-ms", required_argument, NULL, 'd'},
		{"pidfile", required_argument, NULL, 'p'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0}
	};
	struct sockaddr_in laddr;
	const char *listen_s = NULL, *target_s = NULL;
	double		delay_ms = -1;
	char	   *end;
	int			o, one = 1;
	sigset_t	mask;
	struct epoll_event ev, events[MAX_EVENTS];
	static struct endpoint ep_listen = {K_LISTEN, NULL, 0};
	static struct endpoint ep_timer = {K_TIMER, NULL, 0};
	static struct endpoint ep_signal = {K_SIGNAL, NULL, 0};
	bool		stop = false;

	while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1)
	{
		switch (o)
		{
			case 'l':
				listen_s = optarg;
				break;
			case 't':
				target_s = optarg;
				break;
			case 'd':
				delay_ms = strtod(optarg, &end);
				if (*end != '\0' || end == optarg || delay_ms < 0 || delay_ms > 60000)
					delay_ms = -2;
				break;
			case 'p':
				pidfile = optarg;
				break;
			case 'h':
				usage(stdout);
				return 0;
			default:
				usage(stderr);
				return 2;
		}
	}
	if (optind != argc || !listen_s || !target_s || delay_ms < 0 ||
		!parse_addr(listen_s, &laddr) || !parse_addr(target_s, &target))
	{
		usage(stderr);
		return 2;
	}
	delay_ns = (int64_t) (delay_ms * 1e6 + 0.5);

	/* the kernel's default slack would let a deadline slip by up to 50 us */
	prctl(PR_SET_TIMERSLACK, 1UL, 0UL, 0UL, 0UL);

	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0)
		fatal("sigprocmask");
	signal(SIGPIPE, SIG_IGN);
	if ((signal_fd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC)) < 0)
		fatal("signalfd");
	if ((timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC)) < 0)
		fatal("timerfd_create");
	if ((listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)) < 0)
		fatal("socket");
	setsockopt(listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(listen_fd, (struct sockaddr *) &laddr, sizeof(laddr)) < 0)
		fatal("bind");
	if (listen(listen_fd, 128) < 0)
		fatal("listen");
	if ((epfd = epoll_create1(EPOLL_CLOEXEC)) < 0)
		fatal("epoll_create1");
	ev.events = EPOLLIN;
	ev.data.ptr = &ep_listen;
	if (epoll_ctl(epfd, EPOLL_CTL_ADD, listen_fd, &ev) < 0)
		fatal("epoll_ctl");
	ev.data.ptr = &ep_timer;
	if (epoll_ctl(epfd, EPOLL_CTL_ADD, timer_fd, &ev) < 0)
		fatal("epoll_ctl");
	ev.data.ptr = &ep_signal;
	if (epoll_ctl(epfd, EPOLL_CTL_ADD, signal_fd, &ev) < 0)
		fatal("epoll_ctl");
	if (pidfile)
	{
		FILE	   *f = fopen(pidfile, "w");

		if (!f || fprintf(f, "%d\n", (int) getpid()) < 0 || fclose(f) != 0)
			fatal(pidfile);
	}
	logmsg("%s -> %s, %.3f ms each way", listen_s, target_s, delay_ms);

	while (!stop)
	{
		int			n = epoll_wait(epfd, events, MAX_EVENTS, -1), i;

		if (n < 0)
		{
			if (errno == EINTR)
				continue;
			fatal("epoll_wait");
		}
		for (i = 0; i < n; i++)
		{
			struct endpoint *e = events[i].data.ptr;
			uint32_t	got = events[i].events;

			switch (e->kind)
			{
				case K_LISTEN:
					on_accept();
					break;
				case K_TIMER:
					{
						uint64_t	expirations;

						if (read(timer_fd, &expirations, sizeof(expirations)) < 0 && errno != EAGAIN)
							fatal("read timerfd");
						armed = -1;		/* fired (or about to): arm again below */
						break;
					}
				case K_SIGNAL:
					stop = true;
					break;
				case K_SOCKET:
					{
						struct conn *c = e->conn;
						int			s = e->side;

						if (c->dead)
							break;
						if ((got & (EPOLLIN | EPOLLHUP | EPOLLERR)) && c->dir[s].reading)
							on_readable(c, s);
						if (!c->dead && (got & (EPOLLOUT | EPOLLERR)) && c->dir[1 - s].blocked)
						{
							c->dir[1 - s].blocked = false;
							flush(c, 1 - s);
						}
						break;
					}
			}
		}
		/* due chunks (also those due at once, with --delay-ms 0) */
		run_due(now_ns());
		arm_timer();
		while (dead_list)
		{
			struct conn *c = dead_list;

			dead_list = c->next_dead;
			free(c);
		}
	}

	logmsg("stopping: %lu connections (%lu open), %lu chunks, %lu bytes forwarded",
		   n_conns, n_open, n_chunks, n_bytes);
	if (pidfile)
		unlink(pidfile);
	return 0;
}
