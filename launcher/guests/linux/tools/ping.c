/*
 * ping: ICMP echo requests on a raw socket, replies timed and printed like iputils' ping.
 *
 *   ping [-c COUNT] [-i SECONDS] [-q] ADDRESS     (ADDRESS as a.b.c.d; no name lookup)
 *
 * COUNT defaults to 4; SECONDS (e.g. 0.2, or 0: next request as soon as the reply is in) to 1.
 * A request unanswered after max(SECONDS, 1 s) is lost.  -q prints only the summary.  Exit
 * status 0 if any reply came, 1 if none, 2 on a usage or socket error.
 */
#include "net.h"

#define ICMP_ECHOREPLY 0
#define ICMP_ECHO 8
#define PAYLOAD 56 /* ping's default: 64 bytes of ICMP, 84 of IP */
#define IP_HEADER 20
#define REPLY_WAIT_MS 1000

struct icmp {
	u8 type, code;
	u16 checksum, id, seq;
	u8 data[PAYLOAD];
};

struct stats {
	u32 sent, received, min_us, max_us, total_us;
};

static u16 checksum(const void *data, u32 len)
{
	const u16 *w = data;
	u32 sum = 0;
	for (; len > 1; len -= 2)
		sum += *w++;
	if (len)
		sum += *(const u8 *)w;
	sum = (sum >> 16) + (sum & 0xffff);
	sum += sum >> 16;
	return (u16)~sum;
}

static int send_echo(int sock, const struct sockaddr_in *to, u16 id, u16 seq)
{
	struct icmp req;
	long args[6] = {sock, (long)&req, sizeof(req), 0, (long)to, sizeof(*to)};

	memset(&req, 0, sizeof(req));
	req.type = ICMP_ECHO;
	req.id = id;
	req.seq = swap16(seq);
	for (u32 i = 0; i < PAYLOAD; i++)
		req.data[i] = (u8)i;
	req.checksum = checksum(&req, sizeof(req));
	return socketcall(SOCKETCALL_SENDTO, args) == sizeof(req);
}

/* Read one packet: the sequence number of our echo reply in it (and its TTL), or -1. */
static long receive_echo(int sock, u32 from, u16 id, u32 *ttl, u32 *bytes)
{
	static u8 packet[IP_HEADER + 60 + sizeof(struct icmp)];
	long args[6] = {sock, (long)packet, sizeof(packet), 0, 0, 0};
	long n = socketcall(SOCKETCALL_RECVFROM, args);
	u32 header = (packet[0] & 0xf) * 4;
	const struct icmp *reply = (const struct icmp *)(packet + header);

	if (n < (long)(header + 8) || *(u32 *)(packet + 12) != from)
		return -1;
	if (reply->type != ICMP_ECHOREPLY || reply->id != id)
		return -1;
	*ttl = packet[8];
	*bytes = (u32)n - header;
	return swap16(reply->seq);
}

/* Wait up to `ms` for the reply to `seq`, printing every reply of ours that comes. */
static void await_reply(int sock, const struct sockaddr_in *to, u16 id, u16 seq, u32 sent_at,
			int ms, int quiet, struct stats *st)
{
	u32 start = now_us();
	for (;;) {
		u32 waited_ms = (now_us() - start) / 1000;
		u32 ttl, bytes;
		long got;
		if ((int)waited_ms >= ms || !readable(sock, ms - (int)waited_ms))
			return;
		got = receive_echo(sock, to->sin_addr, id, &ttl, &bytes);
		if (got != seq)
			continue; /* not ours, or a late reply to an earlier request: lost already */
		u32 rtt = now_us() - sent_at;
		st->received++;
		st->total_us += rtt;
		st->min_us = st->received == 1 || rtt < st->min_us ? rtt : st->min_us;
		st->max_us = rtt > st->max_us ? rtt : st->max_us;
		if (!quiet) {
			put_u32(bytes);
			put(" bytes from ");
			put_ip(to->sin_addr);
			put(": icmp_seq=");
			put_u32(seq);
			put(" ttl=");
			put_u32(ttl);
			put(" time=");
			put_ms(rtt);
			put(" ms\n");
		}
		return;
	}
}

/* "1", "0.2", "0": seconds as milliseconds; -1 if malformed. */
static long parse_seconds(const char *s)
{
	long whole = parse_u32(&s), ms = 0, scale = 100;
	if (whole < 0)
		return -1;
	if (*s == '.')
		for (s++; *s >= '0' && *s <= '9'; s++, scale /= 10)
			ms += (*s - '0') * scale;
	return *s ? -1 : whole * 1000 + ms;
}

static void summary(u32 address, const struct stats *st, u32 elapsed_us)
{
	put("\n--- ");
	put_ip(address);
	put(" ping statistics ---\n");
	put_u32(st->sent);
	put(" packets transmitted, ");
	put_u32(st->received);
	put(" received, ");
	put_u32(st->sent ? (st->sent - st->received) * 100 / st->sent : 0);
	put("% packet loss, time ");
	put_u32(elapsed_us / 1000);
	put("ms\n");
	if (st->received) {
		put("rtt min/avg/max = ");
		put_ms(st->min_us);
		put("/");
		put_ms(st->total_us / st->received);
		put("/");
		put_ms(st->max_us);
		put(" ms\n");
	}
}

int main(int argc, char **argv, char **envp)
{
	long count = 4, interval_ms = 1000;
	int quiet = 0, sock;
	const char *target = 0, *p;
	struct sockaddr_in to = {AF_INET, 0, 0, {0}};
	struct stats st = {0, 0, 0, 0, 0};
	u16 id;
	u32 start;

	(void)envp;
	for (int i = 1; i < argc; i++) {
		if (str_eq(argv[i], "-c") && i + 1 < argc) {
			p = argv[++i];
			count = parse_u32(&p);
			count = *p ? -1 : count;
		} else if (str_eq(argv[i], "-i") && i + 1 < argc) {
			interval_ms = parse_seconds(argv[++i]);
		} else if (str_eq(argv[i], "-q")) {
			quiet = 1;
		} else {
			target = argv[i];
		}
	}
	p = target;
	if (!target || count <= 0 || interval_ms < 0 || !parse_ip(&p, &to.sin_addr) || *p) {
		put_err("usage: ping [-c COUNT] [-i SECONDS] [-q] a.b.c.d\n");
		return 2;
	}
	sock = (int)sys_socket(AF_INET, SOCK_RAW, IPPROTO_ICMP);
	if (sock < 0) {
		put_err("ping: no raw ICMP socket (is the kernel built with CONFIG_INET?)\n");
		return 2;
	}
	id = (u16)sys_getpid();
	put("PING ");
	put_ip(to.sin_addr);
	put(" (");
	put_ip(to.sin_addr);
	put(") ");
	put_u32(PAYLOAD);
	put("(");
	put_u32(PAYLOAD + 8 + IP_HEADER);
	put(") bytes of data.\n");
	start = now_us();
	for (long seq = 1; seq <= count; seq++) {
		u32 sent_at = now_us();
		int wait_ms = interval_ms > REPLY_WAIT_MS ? (int)interval_ms : REPLY_WAIT_MS;
		if (send_echo(sock, &to, id, (u16)seq))
			st.sent++;
		await_reply(sock, &to, id, (u16)seq, sent_at, wait_ms, quiet, &st);
		/* Keep the pace: the next request goes out `interval` after this one. */
		while (seq < count && (long)((now_us() - sent_at) / 1000) < interval_ms)
			readable(-1, (int)(interval_ms - (long)(now_us() - sent_at) / 1000));
	}
	summary(to.sin_addr, &st, now_us() - start);
	return st.received ? 0 : 1;
}
